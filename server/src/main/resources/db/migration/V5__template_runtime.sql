-- The driver a template's sandboxes run on (oci, microvm), so one server runs both side by side. NULL: the server's
-- default driver (--runtime). A snapshot records the driver of the sandbox it was taken from: only that driver can
-- start sandboxes from it.
ALTER TABLE templates ADD COLUMN runtime VARCHAR(16);
