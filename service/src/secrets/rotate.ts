import { eq } from "drizzle-orm";
import { recordChange } from "../audit/changes";
import type { ServiceContext } from "../context";
import { applications, registryCredentials, servers } from "../db/schema";
import { credentialSecretContext } from "../credentials/credentials";
import { serverSecretContext } from "../servers/servers";

export interface RotationReport {
  key_id: string;
  reencrypted: number;
  already_current: number;
}

export const appEnvSecretContext = (id: string) => `applications.env:${id}`;

/**
 * Re-encrypts every stored secret under the current master key. Values under a previous key
 * decrypt through REOCLO_PREVIOUS_MASTER_KEYS; after this, those keys can be dropped.
 */
export async function rotateSecrets(ctx: ServiceContext): Promise<RotationReport> {
  const report: RotationReport = { key_id: "", reencrypted: 0, already_current: 0 };
  const reseal = (value: string, context: string): string | undefined => {
    if (!ctx.secrets.needsRotation(value)) {
      report.already_current++;
      return undefined;
    }
    report.reencrypted++;
    return ctx.secrets.encrypt(ctx.secrets.decrypt(value, context), context);
  };
  await ctx.db.transaction(async (tx) => {
    for (const s of await tx.select().from(servers).for("update")) {
      const privateKeyEnc = reseal(s.privateKeyEnc, serverSecretContext(s.id, "private_key"));
      const passphraseEnc = s.passphraseEnc
        ? reseal(s.passphraseEnc, serverSecretContext(s.id, "passphrase"))
        : undefined;
      if (privateKeyEnc || passphraseEnc) {
        await tx.update(servers).set({ privateKeyEnc, passphraseEnc }).where(eq(servers.id, s.id));
      }
    }
    for (const c of await tx.select().from(registryCredentials).for("update")) {
      const passwordEnc = reseal(c.passwordEnc, credentialSecretContext(c.id));
      if (passwordEnc)
        await tx.update(registryCredentials).set({ passwordEnc }).where(eq(registryCredentials.id, c.id));
    }
    for (const a of await tx.select().from(applications).for("update")) {
      const envEnc = a.envEnc ? reseal(a.envEnc, appEnvSecretContext(a.id)) : undefined;
      if (envEnc) await tx.update(applications).set({ envEnc }).where(eq(applications.id, a.id));
    }
    report.key_id = ctx.secrets.currentKeyId ?? "";
    await recordChange(ctx, tx, { action: "secrets.rotate", details: { ...report } });
  });
  return report;
}
