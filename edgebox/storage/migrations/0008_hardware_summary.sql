-- The numbers a machine list shows per row (domain/hardware.py, summary_of), written beside
-- the inventory whenever it is, so that listing thousands of machines parses no inventory.
-- Inventories stored before this version are summarised here by the same rules, for both
-- shapes (enlistment's and commissioning's); tests/unit/storage/test_hardware_summary.py
-- checks that this and summary_of agree.
ALTER TABLE machine_inventory ADD COLUMN summary TEXT;
UPDATE machine_inventory SET summary = json_object(
    'cores', json_extract(data, '$.cpu.cores'),
    'threads', json_extract(data, '$.cpu.threads'),
    'memory_mib', coalesce(
        nullif(json_extract(data, '$.memory.total_mib'), 0), json_extract(data, '$.memory_mib')
    ),
    'storage_bytes', (
        SELECT sum(json_extract(value, '$.size_bytes')) FROM json_each(data, '$.disks')
        WHERE type = 'object'
    ),
    'disks', (SELECT count(*) FROM json_each(data, '$.disks') WHERE type = 'object'),
    'gpus', CASE json_type(data, '$.gpus') WHEN 'array' THEN (
        SELECT count(*) FROM json_each(data, '$.gpus') WHERE type = 'object'
    ) END,
    'arch', CASE lower(trim(json_extract(data, '$.cpu.arch')))
        WHEN 'x86_64' THEN 'amd64' WHEN 'x86-64' THEN 'amd64'
        WHEN 'aarch64' THEN 'arm64' WHEN 'armv8' THEN 'arm64'
        WHEN 'armv7l' THEN 'armhf' WHEN 'i686' THEN 'i386'
        ELSE nullif(lower(trim(json_extract(data, '$.cpu.arch'))), '')
    END
);
