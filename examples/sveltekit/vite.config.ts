import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vite';

// The token service; the default is that of `token-exchange demo`.
const tokenService = process.env.TOKEN_SERVICE_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [sveltekit()],
  server: {
    // Dev only: the page's POST /v1/realtime/token and the relay socket go to the service on the
    // page's own origin (Host kept), so the browser sends the httpOnly session cookie with them.
    // In production the reverse proxy in front of the app does this (README).
    proxy: {
      '/v1/realtime': { target: tokenService, ws: true },
    },
  },
});
