// Where the emulator and the token service are: the defaults are those of `token-exchange demo`.
// NUXT_* variables override runtimeConfig at run time; TOKEN_SERVICE_URL is read when the dev
// server starts (the dev proxy is configured once).
const tokenService = process.env.TOKEN_SERVICE_URL ?? 'http://127.0.0.1:8080'

export default defineNuxtConfig({
  compatibilityDate: '2025-07-15',
  devtools: { enabled: false },
  telemetry: false,
  css: ['~/assets/style.css'],
  runtimeConfig: {
    // Server only: never sent to the browser. Unset means the emulator's key, and only against a
    // loopback endpoint (server/utils/appwrite.ts).
    appwriteApiKey: '', // NUXT_APPWRITE_API_KEY
    public: {
      appwriteEndpoint: 'http://127.0.0.1:8081/v1', // NUXT_PUBLIC_APPWRITE_ENDPOINT
      appwriteProject: 'demo', // NUXT_PUBLIC_APPWRITE_PROJECT
    },
  },
  vite: {
    // Found at the first visit otherwise, which makes Vite re-optimise and reload that page.
    optimizeDeps: { include: ['appwrite', '@appwrite-token-exchange/realtime-auth'] },
  },
  nitro: {
    // Dev only: the page's POST /v1/realtime/token and the relay socket go to the service on the
    // page's own origin, so the browser sends the httpOnly session cookie with them. The rule is
    // /v1 (the app has no /v1 routes of its own): devProxy strips its prefix, and a
    // '/v1/realtime' rule would send the socket to '/v1/realtime/?project=..' (404).
    // In production the reverse proxy in front of the app does this (README).
    devProxy: {
      '/v1': { target: `${tokenService}/v1`, ws: true },
    },
  },
})
