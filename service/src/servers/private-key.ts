import ssh2 from "ssh2";
import type { ParsedKey } from "ssh2";
import { ServiceError } from "../errors";

// The private key a server is reached with, checked before it is stored: it must parse (with its
// passphrase) and must not be a public key, which would otherwise surface only at the first command.

/** Throws a 422 naming the problem when `text` is not a usable private key. */
export function checkPrivateKey(text: string, passphrase: string | undefined): void {
  const parsedKey = ssh2.utils.parseKey(text, passphrase);
  refusePublicKey(text, parsedKey instanceof Error ? undefined : parsedKey);
  if (parsedKey instanceof Error) {
    throw new ServiceError("validation", `The private key could not be read: ${parsedKey.message}.`, {
      private_key: [parsedKey.message],
    });
  }
}

// What a public key looks like: an OpenSSH .pub line (certificates too), or a PEM / RFC 4716 block.
const OPENSSH_PUBLIC_KEY = /^((?:ssh|ecdsa-sha2|sk)-[a-z0-9.@-]+)\s+AAAA/;
const PEM_PUBLIC_KEY = /^-----BEGIN ((?:RSA )?PUBLIC KEY)-----|^---- BEGIN (SSH2 PUBLIC KEY) ----/;

/** The kind of public key `text` is (what ssh2 parsed it as, if it could), or undefined. */
function publicKeyKind(text: string, parsed: ParsedKey | ParsedKey[] | undefined): string | undefined {
  const head = text.trimStart();
  const openssh = OPENSSH_PUBLIC_KEY.exec(head);
  if (openssh) return openssh[1];
  const pem = PEM_PUBLIC_KEY.exec(head);
  if (pem) return `PEM ${pem[1] ?? pem[2]}`;
  return [parsed ?? []].flat().find((k) => !k.isPrivateKey())?.type;
}

/** A public key given as the private key is refused by name. */
function refusePublicKey(text: string, parsed: ParsedKey | ParsedKey[] | undefined): void {
  const kind = publicKeyKind(text, parsed);
  if (kind === undefined) return;
  const problem = `this is a public key (${kind}); give the private key file, not the .pub one`;
  throw new ServiceError("validation", `The private key could not be used: ${problem}.`, {
    private_key: [problem],
  });
}
