ALTER TABLE "operations" ADD COLUMN "stdout_tail" "bytea";--> statement-breakpoint
ALTER TABLE "operations" ADD COLUMN "stderr_tail" "bytea";--> statement-breakpoint
ALTER TABLE "operations" ADD COLUMN "cancel_requested_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "operations" ADD COLUMN "last_seq" integer DEFAULT 0 NOT NULL;