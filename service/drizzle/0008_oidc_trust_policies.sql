CREATE TABLE "oidc_token_uses" (
	"issuer" text NOT NULL,
	"jti" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	CONSTRAINT "oidc_token_uses_issuer_jti_pk" PRIMARY KEY("issuer","jti")
);
--> statement-breakpoint
CREATE TABLE "trust_policies" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"org_id" uuid NOT NULL,
	"name" text NOT NULL,
	"issuer" text NOT NULL,
	"audience" text NOT NULL,
	"conditions" jsonb NOT NULL,
	"operations" text[] NOT NULL,
	"all_servers" boolean DEFAULT false NOT NULL,
	"server_ids" uuid[] DEFAULT '{}'::uuid[] NOT NULL,
	"all_credentials" boolean DEFAULT false NOT NULL,
	"credential_ids" uuid[] DEFAULT '{}'::uuid[] NOT NULL,
	"allowed_cidrs" text[] DEFAULT '{}'::text[] NOT NULL,
	"rate_limit_per_minute" integer DEFAULT 100 NOT NULL,
	"rate_limit_per_hour" integer DEFAULT 1000 NOT NULL,
	"lifetime_seconds" integer DEFAULT 900 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text NOT NULL,
	"deleted_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "audit_events" ADD COLUMN "run_context_verified" jsonb;--> statement-breakpoint
ALTER TABLE "automation_keys" ADD COLUMN "trust_policy_id" uuid;--> statement-breakpoint
ALTER TABLE "automation_keys" ADD COLUMN "run_context_verified" jsonb;--> statement-breakpoint
ALTER TABLE "trust_policies" ADD CONSTRAINT "trust_policies_org_id_organisations_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."organisations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "oidc_token_uses_expires_idx" ON "oidc_token_uses" USING btree ("expires_at");--> statement-breakpoint
CREATE UNIQUE INDEX "trust_policies_org_name_live_uq" ON "trust_policies" USING btree ("org_id","name") WHERE deleted_at is null;--> statement-breakpoint
CREATE INDEX "trust_policies_issuer_idx" ON "trust_policies" USING btree ("issuer");--> statement-breakpoint
ALTER TABLE "automation_keys" ADD CONSTRAINT "automation_keys_trust_policy_id_trust_policies_id_fk" FOREIGN KEY ("trust_policy_id") REFERENCES "public"."trust_policies"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "automation_keys_trust_policy_idx" ON "automation_keys" USING btree ("trust_policy_id");