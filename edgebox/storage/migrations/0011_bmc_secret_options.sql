-- A BMC's secret options (IPMI's k_g, a webhook's headers), sealed together as one JSON object
-- with the key that seals passwords (services/secret_box.py), apart from the plain options.
-- Values that older versions kept in `options` are sealed and moved here by the power service
-- at its start (sealing needs the key, which SQL does not have).
ALTER TABLE bmcs ADD COLUMN secret_options BLOB;
