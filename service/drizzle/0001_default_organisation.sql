-- Spec §10: a default organisation named `default` exists from the first start.
INSERT INTO "organisations" ("name") VALUES ('default') ON CONFLICT ("name") DO NOTHING;
