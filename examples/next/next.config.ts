import type { NextConfig } from 'next'

// The token service; the default is that of `token-exchange demo`.
const tokenService = process.env.TOKEN_SERVICE_URL ?? 'http://127.0.0.1:8080'

const nextConfig: NextConfig = {
  // The page's POST /v1/realtime/token and the relay socket go to the service on the page's own
  // origin, so the browser sends the httpOnly session cookie with them. In production the reverse
  // proxy in front of the app does this instead (README).
  async rewrites() {
    return [
      { source: '/v1/realtime', destination: `${tokenService}/v1/realtime` },
      { source: '/v1/realtime/:path*', destination: `${tokenService}/v1/realtime/:path*` },
    ]
  },
}

export default nextConfig
