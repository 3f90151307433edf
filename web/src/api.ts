// The console's one way to the JSON API. The login token lives in an HttpOnly cookie the
// server sets (script never sees it); every call carries X-Fluxcode-Console, without which
// the server ignores the cookie, so another site cannot make the browser act for the user.
import { reactive } from 'vue'

export class ApiError extends Error {
  status: number
  code: string
  field: string
  constructor(status: number, code: string, message: string, field = '') {
    super(message)
    this.status = status
    this.code = code
    this.field = field
  }
}

export interface Me {
  id: number
  email: string
  role: string
  status: string
  balance: string
  concurrency: number
  must_change_password: boolean
  must_enrol_2fa: boolean
}

export interface Page<T> {
  items: T[]
  total: number
  page: number
  page_size: number
}

export const state = reactive({
  me: null as Me | null,
  siteName: 'FluxCode',
  registration: false,
  busy: 0, // requests in flight, shown as a progress bar
  // enrolOnly: signed in with a session good only for enrolling a second factor (an admin
  // under require_2fa_for_admins); /me refuses it, the 2FA page is all there is.
  enrolOnly: false,
  onUnauthenticated: () => {},
})

async function send(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { 'X-Fluxcode-Console': '1' }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  state.busy++
  try {
    return await fetch('/api/v1' + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    })
  } finally {
    state.busy--
  }
}

async function fail(res: Response): Promise<never> {
  let code = 'http_' + res.status
  let message = res.statusText
  let field = ''
  try {
    const j = await res.json()
    code = j.error?.code ?? code
    message = j.error?.message ?? message
    field = j.error?.field ?? ''
  } catch {
    // not JSON: keep the status text
  }
  if (res.status === 401 && state.me) {
    state.me = null
    state.onUnauthenticated()
  }
  throw new ApiError(res.status, code, message, field)
}

export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await send(method, path, body)
  if (!res.ok) return fail(res)
  if (res.status === 204) return undefined as T
  return (await res.json()) as T
}

// download fetches a file from the API (with the console header) and saves it.
export async function download(path: string, filename: string): Promise<void> {
  const res = await send('GET', path)
  if (!res.ok) return fail(res)
  const url = URL.createObjectURL(await res.blob())
  const a = document.createElement('a')
  a.href = url
  a.download = filename
  document.body.appendChild(a)
  a.click()
  a.remove()
  URL.revokeObjectURL(url)
}

export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== '' && v !== 0) q.set(k, String(v))
  }
  const s = q.toString()
  return s ? '?' + s : ''
}

export async function loadMe(): Promise<Me | null> {
  try {
    state.me = await api<Me>('GET', '/me')
  } catch {
    state.me = null
  }
  return state.me
}

export async function loadPublic(): Promise<void> {
  try {
    const s = await api<{ site_name: string; registration_enabled: boolean }>('GET', '/settings/public')
    state.siteName = s.site_name
    state.registration = s.registration_enabled
  } catch {
    // keep the defaults
  }
}

// Money crosses the API as an exact decimal string with nine decimals ("12.500000000"); the
// API never rounds it, and neither does the console. money shows at least four decimals and
// every further non-zero one, so $0.000045 is never shown as $0.0000 and a balance is never
// rounded up or down.
export function money(s: string | undefined): string {
  if (!s) return '$0.0000'
  const neg = s.startsWith('-')
  const [i, f = ''] = (neg ? s.slice(1) : s).split('.')
  const frac = f.replace(/0+$/, '').padEnd(4, '0')
  return (neg ? '-$' : '$') + i + '.' + frac
}

// nanos reads an API money string into an exact count of 10^-9 dollars.
export function nanos(s: string | undefined): bigint {
  if (!s) return 0n
  const neg = s.startsWith('-')
  const [i, f = ''] = (neg ? s.slice(1) : s).split('.')
  const v = BigInt(i || '0') * 1_000_000_000n + BigInt((f + '000000000').slice(0, 9))
  return neg ? -v : v
}

// fromNanos writes an exact count of 10^-9 dollars as the API does.
export function fromNanos(v: bigint): string {
  const neg = v < 0n
  const a = neg ? -v : v
  return (neg ? '-' : '') + (a / 1_000_000_000n).toString() + '.' + (a % 1_000_000_000n).toString().padStart(9, '0')
}

export function when(s: string | null | undefined): string {
  if (!s) return '—'
  const d = new Date(s)
  return isNaN(d.getTime()) ? s : d.toLocaleString()
}

export function isFuture(s: string | null | undefined): boolean {
  return !!s && new Date(s).getTime() > Date.now()
}
