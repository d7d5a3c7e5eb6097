import type { Command } from "commander";
import { addActivityCommands, addAppCommands } from "./commands-apps";
import {
  addCredentialCommands,
  addKeyCommands,
  addServerCommands,
  addTrustPolicyCommands,
} from "./commands-infra";
import { addPeopleCommands } from "./commands-people";
import { commandKit } from "./command-kit";
import type { Invocation } from "./program";

// Every command of reoclo-admin (spec §10), named after its verb (spec §11): `servers update` runs
// `servers.update`. Files and standard input are read by the commands, never by the service.

export function addCommands(program: Command, s: Invocation): void {
  const kit = commandKit(program, s);

  const orgs = kit.group("orgs", "organisations (on the service's machine only)");
  kit.verb(orgs, "create <name>", "orgs.create", "create an organisation", ([name]) => ({ name }));
  kit.list(orgs, "orgs.list", "list the organisations");
  addServerCommands(kit);
  addKeyCommands(kit);
  addTrustPolicyCommands(kit);
  addCredentialCommands(kit);
  addAppCommands(kit);
  addPeopleCommands(kit);
  addActivityCommands(kit);
  const secrets = kit.group("secrets", "secrets at rest (on the service's machine only)");
  kit.verb(
    secrets,
    "rotate",
    "secrets.rotate",
    "re-encrypt every secret with the current master key",
    () => ({}),
  );
}
