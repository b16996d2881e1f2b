import './style.css'

export const metadata = { title: 'Next.js · Appwrite Realtime' }

export default function RootLayout({ children }: { children: React.ReactNode }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  )
}
