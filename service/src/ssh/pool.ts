// All SSH goes through here: pooled, pinned connections with capped channels, FIFO waiting and safe retries.
import { createHash } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import type { Client, ClientChannel } from "ssh2";
import { closeSsh, connectSsh, SshError, type SshTarget } from "./connect.js";

export interface PoolTarget extends SshTarget {
  readonly serverId: string;
}

export interface SshPoolOptions {
  /** Default 8: OpenSSH's MaxSessions 10 refuses an 11th, and a cap of 10 still races its session teardown. */
  maxChannelsPerConnection?: number;
  /** Default 4; another connection is opened only when all the others are full. */
  maxConnectionsPerHost?: number;
  /** Default 3 handshakes in flight per host, well under sshd's MaxStartups. */
  maxConcurrentConnects?: number;
  /** Default 60 s; a connection with no open channel for this long is closed. */
  idleTimeoutMs?: number;
  /** Default 15 s, covering TCP connect, key exchange and authentication. */
  connectTimeoutMs?: number;
}

interface Connection {
  readonly client: Client;
  /** Channels open or being opened; a channel counts until it emits "close". */
  inUse: number;
  idleTimer: NodeJS.Timeout | undefined;
}

interface Waiter {
  resolve(conn: Connection): void;
  reject(err: unknown): void;
}

/** One server with one set of settings: connections to it, handshakes in flight and callers waiting for a slot. */
interface HostGroup {
  readonly key: string;
  readonly target: PoolTarget;
  readonly connections: Set<Connection>;
  connecting: number;
  readonly waiters: Waiter[];
  /** The server's settings changed since (an update, a re-pin): its connections close once idle. */
  retired: boolean;
}

const exits = new WeakMap<ClientChannel, { code: number | null; signal?: string | undefined }>();

/** How a pooled channel's command ended (its "exit" event), once it has; read it on "close". */
export function channelExit(
  ch: ClientChannel,
): { code: number | null; signal?: string | undefined } | undefined {
  return exits.get(ch);
}

/** Connection refusals are quick: ask again twice, soon (issue 13, item 4: timeouts are never retried). */
const CONNECT_RETRY_DELAYS_MS = [100, 400];
/**
 * A refused channel ran nothing, and sshd frees a MaxSessions slot as soon as a session ends, so a
 * burst is waited out: doubling from 25 ms to 1 s, then 1 s steps, about 8.6 s in all (issue 13, item 5).
 */
const CHANNEL_RETRY_DELAYS_MS = [25, 50, 100, 200, 400, 800, ...Array<number>(7).fill(1_000)];

/**
 * Every setting that changes what a connection is; hashed so the private key is not kept as a map
 * key. A server whose address, user, key or pinned host key changed gets new connections at once.
 */
function poolKey(t: PoolTarget): string {
  const parts = [
    t.serverId,
    t.host,
    t.port,
    t.username,
    t.hostKeyFingerprint,
    t.privateKey,
    t.passphrase ?? "",
  ];
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}

/** Failures before a channel exists, where the exec request cannot have been sent (ssh2 1.x wording). */
function isChannelOpenFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if ("reason" in err) return true; // SSH_MSG_CHANNEL_OPEN_FAILURE, e.g. sshd's MaxSessions
  return ["No response from server", "No free channels available", "Not connected"].includes(err.message);
}

/** How long `exec` waits before trying again, or undefined: never after the host could have started the command. */
function retryDelay(err: unknown, tries: { connect: number; channelOpen: number }): number | undefined {
  if (err instanceof SshError) return err.refused ? CONNECT_RETRY_DELAYS_MS[tries.connect] : undefined;
  return isChannelOpenFailure(err) ? CHANNEL_RETRY_DELAYS_MS[tries.channelOpen] : undefined;
}

export class SshPool {
  private readonly maxChannels: number;
  private readonly maxConnections: number;
  private readonly maxConnects: number;
  private readonly idleTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly groups = new Map<string, HostGroup>();
  /** Each server's settings as last asked for (a pool key): its other groups are retired. */
  private readonly current = new Map<string, string>();
  /** Handshakes and hang-ups in flight, awaited by close() so nothing outlives the pool. */
  private readonly pending = new Set<Promise<unknown>>();
  private closed = false;
  private readonly retried = { connect: 0, channelOpen: 0 };

  constructor(opts: SshPoolOptions = {}) {
    this.maxChannels = opts.maxChannelsPerConnection ?? 8;
    this.maxConnections = opts.maxConnectionsPerHost ?? 4;
    this.maxConnects = opts.maxConcurrentConnects ?? 3;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 15_000;
  }

  /** An exec channel on a pooled connection; retries only refused connects and refused channels, where nothing ran. */
  async exec(target: PoolTarget, command: string): Promise<ClientChannel> {
    const tries = { connect: 0, channelOpen: 0 };
    for (;;) {
      try {
        return await this.tryExec(target, command);
      } catch (err) {
        const wait = this.closed ? undefined : retryDelay(err, tries);
        if (wait === undefined) throw this.asSshError(err, target);
        const kind = err instanceof SshError ? "connect" : "channelOpen";
        tries[kind]++;
        this.retried[kind]++;
        await delay(wait, undefined, { ref: false });
      }
    }
  }

  /** Retries since the pool was made: of refused connects, and of channels the host refused (MaxSessions). */
  retries(): { connect: number; channelOpen: number } {
    return { ...this.retried };
  }

  stats(): { connections: number; channels: number; waiting: number } {
    let connections = 0;
    let channels = 0;
    let waiting = 0;
    for (const group of this.groups.values()) {
      connections += group.connections.size;
      group.connections.forEach((c) => (channels += c.inUse));
      waiting += group.waiters.length;
    }
    return { connections, channels, waiting };
  }

  /** Closes every connection (their channels see "close") and rejects calls still waiting. */
  async close(): Promise<void> {
    this.closed = true;
    const err = new SshError("ssh_error", "The SSH pool was closed before a channel could be opened.");
    for (const group of this.groups.values()) {
      group.waiters.splice(0).forEach((w) => w.reject(err));
      [...group.connections].forEach((conn) => this.drop(group, conn));
    }
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  private async tryExec(target: PoolTarget, command: string): Promise<ClientChannel> {
    if (this.closed) throw new SshError("ssh_error", "The SSH pool is closed.");
    const group = this.groupFor(target);
    const conn = await new Promise<Connection>((resolve, reject) => {
      group.waiters.push({ resolve, reject });
      this.pump(group);
    });
    try {
      const channel = await new Promise<ClientChannel>((resolve, reject) => {
        conn.client.exec(command, (err: Error | undefined, ch: ClientChannel) => {
          if (err) return reject(err);
          // Recorded before anyone awaits the channel: a quick command's exit-status can arrive
          // in the same read as the exec reply, and an "exit" emitted then has no listener yet.
          ch.once("exit", (code: number | null, signal?: string) => exits.set(ch, { code, signal }));
          resolve(ch);
        });
      });
      channel.once("close", () => this.release(group, conn));
      return channel;
    } catch (err) {
      this.release(group, conn); // a throw ("Not connected") or a refused channel never held the slot
      throw err;
    }
  }

  private groupFor(target: PoolTarget): HostGroup {
    const key = poolKey(target);
    let group = this.groups.get(key);
    if (!group) {
      group = { key, target, connections: new Set(), connecting: 0, waiters: [], retired: false };
      this.groups.set(key, group);
    }
    if (this.current.get(target.serverId) !== key) {
      this.current.set(target.serverId, key);
      group.retired = false;
      for (const other of this.groups.values())
        if (other !== group && other.target.serverId === target.serverId) this.retire(other);
    }
    return group;
  }

  /**
   * The server's settings changed (an update, a re-pin): connections made with the old ones close
   * now if idle, else when their last channel closes, so what runs goes on and nothing reuses them.
   */
  private retire(group: HostGroup): void {
    group.retired = true;
    [...group.connections].filter((c) => c.inUse === 0).forEach((c) => this.drop(group, c));
  }

  /** Hands free slots to waiters in FIFO order, then opens connections for those that capacity in sight won't serve. */
  private pump(group: HostGroup): void {
    while (group.waiters.length > 0) {
      const conn = [...group.connections].find((c) => c.inUse < this.maxChannels);
      if (!conn) break;
      conn.inUse++;
      clearTimeout(conn.idleTimer);
      conn.idleTimer = undefined;
      group.waiters.shift()?.resolve(conn);
    }
    while (
      group.waiters.length > group.connecting * this.maxChannels &&
      group.connections.size + group.connecting < this.maxConnections &&
      group.connecting < this.maxConnects
    ) {
      this.connect(group);
    }
    this.forgetIfUnused(group);
  }

  private connect(group: HostGroup): void {
    group.connecting++;
    const attempt = connectSsh(group.target, { readyTimeoutMs: this.connectTimeoutMs }).then(
      (client) => {
        group.connecting--;
        const conn: Connection = { client, inUse: 0, idleTimer: undefined };
        group.connections.add(conn);
        client.on("error", () => undefined); // connectSsh ignores errors after "ready"; "close" removes the connection
        client.once("close", () => this.remove(group, conn));
        if (this.closed) return this.drop(group, conn);
        this.pump(group);
        this.armIdle(group, conn);
      },
      (err: unknown) => {
        group.connecting--;
        // With another connection up or on its way, waiters are served by it; otherwise each gets the error to retry.
        if (group.connections.size === 0 && group.connecting === 0) {
          group.waiters.splice(0).forEach((w) => w.reject(err));
        }
        this.forgetIfUnused(group);
      },
    );
    this.track(attempt);
  }

  private release(group: HostGroup, conn: Connection): void {
    conn.inUse--;
    if (group.connections.has(conn)) this.armIdle(group, conn);
    this.pump(group);
  }

  private armIdle(group: HostGroup, conn: Connection): void {
    if (conn.inUse > 0 || conn.idleTimer !== undefined) return;
    if (group.retired) return this.drop(group, conn);
    conn.idleTimer = setTimeout(() => this.drop(group, conn), this.idleTimeoutMs).unref();
  }

  /** Forgets a connection that closed or failed; its open channels see "close" from ssh2. */
  private remove(group: HostGroup, conn: Connection): void {
    clearTimeout(conn.idleTimer);
    if (!group.connections.delete(conn)) return;
    this.pump(group);
  }

  /** Hangs up a connection on purpose (idle, or the pool closing). */
  private drop(group: HostGroup, conn: Connection): void {
    this.remove(group, conn);
    this.track(closeSsh(conn.client));
  }

  private forgetIfUnused(group: HostGroup): void {
    const unused = group.connections.size === 0 && group.connecting === 0 && group.waiters.length === 0;
    if (!unused || this.groups.get(group.key) !== group) return;
    this.groups.delete(group.key);
    if (this.current.get(group.target.serverId) === group.key) this.current.delete(group.target.serverId);
  }

  private track(promise: Promise<unknown>): void {
    const tracked = promise.finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }

  private asSshError(err: unknown, target: PoolTarget): SshError {
    if (err instanceof SshError) return err;
    const detail = err instanceof Error ? err.message : String(err);
    const where = `${target.host}:${target.port}`;
    const msg =
      isChannelOpenFailure(err) && !this.closed
        ? `Could not open an SSH channel on ${where} (${detail}), even after asking again for several seconds; check the server's MaxSessions (OpenSSH's default is 10) and its logs.`
        : `Could not open an SSH channel on ${where} (${detail}); retry, and check the server's MaxSessions and logs if it persists.`;
    return new SshError("ssh_error", msg, { cause: err });
  }
}
