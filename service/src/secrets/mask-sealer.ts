import type { MaskSealer } from "../operations/runner";
import type { SecretBox } from "./secret-box";

// An operation's mask values (env secrets, a registry username) sealed into its row while it runs,
// so an instance taking it over masks exactly what the first one did (issue 19). The additional
// data binds the envelope to the operation; the row's copy is cleared when the operation ends.

const context = (operationId: string) => `operations.mask:${operationId}`;

export function maskSealer(secrets: SecretBox): MaskSealer {
  return {
    seal: (operationId, values) =>
      secrets.available ? secrets.encrypt(JSON.stringify(values), context(operationId)) : undefined,
    unseal: (operationId, sealed) => {
      const values: unknown = JSON.parse(secrets.decrypt(sealed, context(operationId)));
      if (!Array.isArray(values) || !values.every((v) => typeof v === "string"))
        throw new Error("the sealed mask values are not a list of strings");
      return values;
    },
  };
}
