import { HEADERS } from "@reoclo/protocol";
import type { Context } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import type { CookieOptions } from "hono/utils/cookie";
import { clientAddress, type ManagementEnv } from "../../access/management";
import { ipInCidrs, parseIp } from "../../access/client-ip";
import {
  authChangePassword,
  authLogin,
  authLogout,
  authMe,
  usersAdd,
  usersList,
  usersRemove,
  usersUpdate,
} from "../../control/people";
import { SESSION_COOKIE } from "../../people/sessions";
import type { SignedIn } from "../../people/users";
import type { ManagementDeps, ManagementRoute } from "./router";

// People, roles, sign-in and sessions (spec §11 "Who"). Signing in and out answer with the
// session cookie: HttpOnly, SameSite=Strict, Path=/, Secure when the request came over https.

/**
 * True when the browser talks https to us: the request URL says so, or a trusted proxy does in
 * X-Forwarded-Proto (its first value: the scheme the client used with the first proxy).
 */
function cameOverHttps(c: Context<ManagementEnv>, deps: ManagementDeps): boolean {
  if (new URL(c.req.url).protocol === "https:") return true;
  const forwarded = c.req.header(HEADERS.forwardedProto)?.split(",")[0]?.trim().toLowerCase();
  if (forwarded !== "https") return false;
  return ipInCidrs(parseIp(clientAddress(c, deps.access).peer), deps.access.trustedProxies);
}

export const cookieOptions = (c: Context<ManagementEnv>, deps: ManagementDeps): CookieOptions => ({
  httpOnly: true,
  sameSite: "Strict",
  path: "/",
  secure: cameOverHttps(c, deps),
});

export const PEOPLE_ROUTES: readonly ManagementRoute[] = [
  {
    method: "post",
    path: "/auth/login",
    verb: authLogin,
    summary: "Sign in with an email and a password; answers the person and sets the session cookie.",
    answer: (c, result, deps) => {
      const { user, session } = result as SignedIn;
      setCookie(c, SESSION_COOKIE, session.token, {
        ...cookieOptions(c, deps),
        maxAge: deps.access.config.sessionMaxHours * 3600,
      });
      return c.json({
        user: {
          id: user.id,
          email: user.email,
          role: user.role,
          must_change_password: user.must_change_password,
        },
      });
    },
  },
  {
    method: "post",
    path: "/auth/logout",
    verb: authLogout,
    summary: "Sign out: ends this session and clears its cookie.",
    answer: (c, _result, deps) => {
      deleteCookie(c, SESSION_COOKIE, cookieOptions(c, deps));
      return c.json({});
    },
  },
  {
    method: "get",
    path: "/auth/me",
    verb: authMe,
    summary: "Who is calling (a person or an integration key), their organisation and permissions.",
  },
  {
    method: "post",
    path: "/auth/change-password",
    verb: authChangePassword,
    summary: "Change your password; every other session of yours ends.",
  },
  { method: "get", path: "/users", verb: usersList, summary: "The organisation's people and their roles." },
  {
    method: "post",
    path: "/users",
    verb: usersAdd,
    status: 201,
    summary: "Add a person with a role; the answer holds their one-time password, shown only once.",
  },
  { method: "patch", path: "/users/{id}", verb: usersUpdate, summary: "Change a person's role." },
  {
    method: "delete",
    path: "/users/{id}",
    verb: usersRemove,
    summary: "Remove a person: their sessions end and their integration keys stop at once.",
  },
];
