-- The foreign keys are checked by each statement rather than at COMMIT:
-- the engine writes a member before its records (engine/store.go,
-- "Members before"), and CockroachDB has no deferrable constraints.
ALTER TABLE adjustments ALTER CONSTRAINT adjustments_member_id_fkey NOT DEFERRABLE;
ALTER TABLE ledger ALTER CONSTRAINT ledger_member_id_fkey NOT DEFERRABLE;
ALTER TABLE lots ALTER CONSTRAINT lots_member_id_fkey NOT DEFERRABLE;
ALTER TABLE metrics ALTER CONSTRAINT metrics_member_id_fkey NOT DEFERRABLE;
ALTER TABLE purchases ALTER CONSTRAINT purchases_member_id_fkey NOT DEFERRABLE;
ALTER TABLE redemptions ALTER CONSTRAINT redemptions_member_id_fkey NOT DEFERRABLE;
ALTER TABLE refunds ALTER CONSTRAINT refunds_member_id_fkey NOT DEFERRABLE;
ALTER TABLE refunds ALTER CONSTRAINT refunds_purchase_id_fkey NOT DEFERRABLE;
ALTER TABLE rule_uses ALTER CONSTRAINT rule_uses_member_id_fkey NOT DEFERRABLE;
ALTER TABLE coupons ALTER CONSTRAINT coupons_member_id_fkey NOT DEFERRABLE;
