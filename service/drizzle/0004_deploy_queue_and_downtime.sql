CREATE TABLE "deploy_queue" (
	"seq" bigserial PRIMARY KEY NOT NULL,
	"application_id" uuid NOT NULL,
	"operation_id" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "deploy_queue_operation_id_unique" UNIQUE("operation_id")
);
--> statement-breakpoint
ALTER TABLE "operations" ADD COLUMN "downtime_ms" integer;--> statement-breakpoint
ALTER TABLE "deploy_queue" ADD CONSTRAINT "deploy_queue_application_id_applications_id_fk" FOREIGN KEY ("application_id") REFERENCES "public"."applications"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "deploy_queue" ADD CONSTRAINT "deploy_queue_operation_id_operations_id_fk" FOREIGN KEY ("operation_id") REFERENCES "public"."operations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "deploy_queue_app_idx" ON "deploy_queue" USING btree ("application_id","seq");