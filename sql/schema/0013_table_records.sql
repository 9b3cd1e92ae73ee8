-- Which records each table holds values of, with the record's time: the index that lets a page of
-- a table's (or a bundle's) records cost what the page holds. Before it, every read gathered all of
-- a table tree's records from data_values before taking its page.
-- Derived data, kept by the triggers below on every path that writes values (the API, imports);
-- never exported: an import rebuilds it as it inserts the values.

CREATE TABLE data_table_records (
    table_id     bigint NOT NULL REFERENCES data_tables (id) ON DELETE CASCADE,
    record_id    bigint NOT NULL REFERENCES data_records (id) ON DELETE CASCADE,
    -- The record's last_updated (which never changes once the record is made).
    last_updated timestamptz NOT NULL,
    PRIMARY KEY (table_id, record_id)
);
CREATE INDEX idx_data_table_records_table_id_last_updated_record_id
    ON data_table_records (table_id, last_updated DESC, record_id DESC);
CREATE INDEX idx_data_table_records_record_id ON data_table_records (record_id);

INSERT INTO data_table_records (table_id, record_id, last_updated)
SELECT DISTINCT f.table_id, v.record_id, r.last_updated
FROM data_values v
JOIN data_fields f ON f.id = v.field_id
JOIN data_records r ON r.id = v.record_id;

-- Once per statement, over all its new values: a batch of thousands costs one insert here.
CREATE FUNCTION data_table_records_add() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO data_table_records (table_id, record_id, last_updated)
    SELECT DISTINCT f.table_id, a.record_id, r.last_updated
    FROM added a
    JOIN data_fields f ON f.id = a.field_id
    JOIN data_records r ON r.id = a.record_id
    -- One order for every writer, so two batches over the same records cannot deadlock here.
    ORDER BY f.table_id, a.record_id
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER data_values_table_records_add
AFTER INSERT ON data_values REFERENCING NEW TABLE AS added
FOR EACH STATEMENT EXECUTE FUNCTION data_table_records_add();

-- A record leaves a table when its last value there goes (a value or a field deleted). Checked per
-- record touched, since a deleted field's table can no longer be looked up from the field.
-- Deleting a record or a table removes its rows here by cascade.
CREATE FUNCTION data_table_records_remove() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    DELETE FROM data_table_records d
    USING (SELECT DISTINCT record_id FROM removed) AS x
    WHERE d.record_id = x.record_id
      AND NOT EXISTS (
          SELECT 1 FROM data_values v JOIN data_fields f ON f.id = v.field_id
          WHERE v.record_id = d.record_id AND f.table_id = d.table_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER data_values_table_records_remove
AFTER DELETE ON data_values REFERENCING OLD TABLE AS removed
FOR EACH STATEMENT EXECUTE FUNCTION data_table_records_remove();
