import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Hono } from "hono";

// The dashboard's own files (a style sheet, one small script, an icon), served by the service:
// nothing from a CDN, so it works offline and under a strict Content-Security-Policy. Each URL
// carries the file's hash, so a browser may keep it for a year and still sees a new version at once.

const TYPES: Record<string, string> = {
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  svg: "image/svg+xml",
};
const FILES = ["dashboard.css", "dashboard.js", "favicon.svg"] as const;
type AssetName = (typeof FILES)[number];

interface Asset {
  readonly body: Buffer;
  readonly hash: string;
  readonly type: string;
}

let loaded: Map<string, Asset> | undefined;
function assets(): Map<string, Asset> {
  if (loaded) return loaded;
  loaded = new Map();
  for (const name of FILES) {
    const body = readFileSync(new URL(`./assets/${name}`, import.meta.url));
    const hash = createHash("sha256").update(body).digest("base64url").slice(0, 12);
    loaded.set(name, { body, hash, type: TYPES[name.split(".").pop()!]! });
  }
  return loaded;
}

export const assetUrl = (name: AssetName) => `/assets/${name}?v=${assets().get(name)!.hash}`;

export function assetRoutes() {
  const app = new Hono();
  app.get("/assets/:name", (c) => {
    const asset = assets().get(c.req.param("name"));
    if (!asset) return c.text("Not found", 404);
    const versioned = c.req.query("v") === asset.hash;
    return c.body(new Uint8Array(asset.body), 200, {
      "Content-Type": asset.type,
      "Cache-Control": versioned ? "public, max-age=31536000, immutable" : "no-cache",
      "X-Content-Type-Options": "nosniff",
    });
  });
  return app;
}
