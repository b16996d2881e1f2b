/**
 * A browser page asking the token service for a Realtime JWT, with types generated from
 * openapi.yaml (check.sh generates them into ./generated, never committed, then type-checks this
 * file against them). If the contract changes in a way this page does not handle, tsc fails.
 */
import type { components, operations } from "./generated/openapi";

type Exchange = operations["createRealtimeToken"];
type ExchangeResponses = Exchange["responses"];
type ProblemStatus = Exclude<keyof ExchangeResponses, 200>;
type ProblemBody<S extends ProblemStatus> = ExchangeResponses[S] extends {
  content: { "application/problem+json": infer Body };
}
  ? Body
  : never;

export type RealtimeToken = ExchangeResponses[200]["content"]["application/json"];
/** Every problem the exchange can answer, as a union discriminated by `code`. */
export type ExchangeProblem = { [S in ProblemStatus]: ProblemBody<S> }[ProblemStatus];
export type ExchangeProblemCode = ExchangeProblem["code"];
export type ProblemCode = components["schemas"]["ProblemCode"];

export type TokenResult =
  | { ok: true; token: RealtimeToken; requestId: string | null }
  | { ok: false; status: number; problem: ExchangeProblem; retryAfterSeconds: number | null; requestId: string | null };

// The headers the contract requires: X-CSRF must be exactly "1".
const exchangeHeaders: Exchange["parameters"]["header"] = { "X-CSRF": "1" };

/** POST /v1/realtime/token with the httpOnly session cookie; never throws on an HTTP refusal. */
export async function fetchRealtimeToken(serviceOrigin = ""): Promise<TokenResult> {
  const response = await fetch(`${serviceOrigin}/v1/realtime/token`, {
    method: "POST",
    credentials: "include", // the session cookie is httpOnly: only the browser can send it
    cache: "no-store",
    headers: exchangeHeaders,
  });
  const requestId = response.headers.get("X-Request-ID");
  if (response.status === 200) {
    const token: RealtimeToken = await response.json();
    return { ok: true, token, requestId };
  }
  const contentType = response.headers.get("Content-Type") ?? "";
  if (!contentType.startsWith("application/problem+json")) {
    // Not the service's answer (a proxy's error page, say): treat it as a transient failure.
    throw new Error(`token service answered ${response.status} ${contentType}`);
  }
  const problem: ExchangeProblem = await response.json();
  const retryAfter = response.headers.get("Retry-After");
  return {
    ok: false,
    status: response.status,
    problem,
    retryAfterSeconds: retryAfter === null ? null : Number(retryAfter),
    requestId,
  };
}

export type NextStep = "sign-in" | "retry-later" | "fix-the-page" | "give-up";

/** What the page does about a refusal: exhaustive over every code the exchange can answer. */
export function nextStep(problem: ExchangeProblem): NextStep {
  switch (problem.code) {
    case "session_missing":
    case "session_invalid":
    case "mfa_required":
      return "sign-in";
    case "rate_limited":
    case "upstream_rate_limited":
    case "upstream_unavailable":
    case "upstream_saturated":
    case "upstream_timeout":
    case "upstream_bad_response":
    case "appwrite_misconfigured":
    case "internal_error":
    case "request_timeout":
      return "retry-later";
    case "csrf_header_missing":
    case "origin_not_allowed":
    case "body_too_large":
    case "bad_request":
    case "headers_too_large":
      return "fix-the-page";
    case "user_blocked":
    case "password_reset_required":
      return "give-up";
    default: {
      const unhandled: never = problem;
      return unhandled;
    }
  }
}

/** `scope` exists only on `rate_limited`, and the types know it. */
export function describe(problem: ExchangeProblem): string {
  if (problem.code === "rate_limited") {
    const scope: components["schemas"]["RateLimitScope"] = problem.scope;
    return `${problem.title} (per ${scope})`;
  }
  return `${problem.title}: ${problem.detail}`;
}

/** Keeps a fresh token in memory, refreshing a little before it expires. */
export async function keepFresh(onToken: (jwt: string) => void, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    const result = await fetchRealtimeToken();
    let waitSeconds: number;
    if (result.ok) {
      onToken(result.token.jwt);
      waitSeconds = Math.max(1, result.token.expiresIn - 10);
    } else if (nextStep(result.problem) === "retry-later") {
      waitSeconds = result.retryAfterSeconds ?? 5;
    } else {
      console.warn(describe(result.problem), result.requestId);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, waitSeconds * 1000));
  }
}

// The generated types are narrow, not `any`: each of these must be a type error.
// @ts-expect-error "no_such_code" is not a problem code
export const notACode: ProblemCode = "no_such_code";
// @ts-expect-error the exchange never answers channel_not_allowed (only the relay does)
export const notAnExchangeCode: ExchangeProblemCode = "channel_not_allowed";
// @ts-expect-error X-CSRF must be exactly "1"
export const wrongCsrf: Exchange["parameters"]["header"] = { "X-CSRF": "yes" };
// @ts-expect-error a token has no `refreshToken`
export const noRefresh: RealtimeToken["refreshToken"] = "x";
