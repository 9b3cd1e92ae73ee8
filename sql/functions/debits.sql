-- Data debits: their shape.
--
-- Database functions are code, not history: this file holds their live definitions, applied by
-- `hatd migrate` (and at every start) after the migrations, whenever its checksum changes
-- (hatd/db.py). Edit a function here, in place; CREATE OR REPLACE cannot change a function's
-- arguments or result type: for that, DROP FUNCTION IF EXISTS the old one first, here.
-- Function bodies are checked when called, not when made, so the order of the files does not matter.

CREATE OR REPLACE FUNCTION data_debit_json(d data_debits) RETURNS json
LANGUAGE sql STABLE
AS $$
    SELECT json_build_object(
        'key', d.key, 'name', d.name,
        'startDate', hat_time(d.start_date), 'endDate', hat_time(d.end_date),
        'rolling', d.rolling, 'sell', d.sell, 'price', d.price, 'kind', d.kind, 'enabled', d.enabled,
        'dateCreated', hat_time(d.date_created), 'lastUpdated', hat_time(d.last_updated))
$$;
