-- DHCP: subnets defined through the API (those in the configuration file live there), leases,
-- other DHCP servers seen on served links, and reserved addresses on interfaces.

CREATE TABLE dhcp_subnets (
    id          INTEGER PRIMARY KEY,
    cidr        TEXT NOT NULL UNIQUE,
    definition  TEXT NOT NULL,       -- the subnet's settings as JSON, as in the config file
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);

-- One row per address ever handed out. Rows are updated in place, never deleted on expiry:
-- "was this address ever used" decides whether it is ARP-probed before an offer.
CREATE TABLE dhcp_leases (
    ip          INTEGER PRIMARY KEY, -- IPv4 address as an integer
    mac         TEXT NOT NULL,
    client_id   BLOB,
    subnet      TEXT NOT NULL,       -- the subnet's CIDR
    state       TEXT NOT NULL,       -- bound | released | expired | declined
    hostname    TEXT NOT NULL DEFAULT '',
    expires     REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX dhcp_leases_mac ON dhcp_leases (mac);

CREATE TABLE dhcp_foreign_servers (
    server_ip   TEXT NOT NULL,
    interface   TEXT NOT NULL,
    server_mac  TEXT NOT NULL DEFAULT '',
    offered_ip  TEXT NOT NULL DEFAULT '',
    first_seen  REAL NOT NULL,
    last_seen   REAL NOT NULL,
    PRIMARY KEY (server_ip, interface)
);

ALTER TABLE interfaces ADD COLUMN ip TEXT;  -- a reserved address: DHCP always gives it this MAC
CREATE UNIQUE INDEX interfaces_ip ON interfaces (ip) WHERE ip IS NOT NULL;
