ALTER TABLE "operations" ADD COLUMN "resume" jsonb;--> statement-breakpoint
ALTER TABLE "operations" ADD COLUMN "mask_sealed" text;