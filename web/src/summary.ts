// Usage summaries as the dashboards show them: totals, and one point per day (UTC) over the
// last days, zero where nothing was used.
import { api } from './api'

export interface Totals {
  day?: string
  model?: string
  requests: number
  input_tokens: number
  output_tokens: number
  cache_creation_tokens: number
  cache_read_tokens: number
  cost: string
  charged: string
}

export interface Summary {
  totals: Totals
  daily: Totals[]
}

export function isoDay(d: Date): string {
  return d.toISOString().slice(0, 10)
}

export function daysAgo(n: number): string {
  return isoDay(new Date(Date.now() - n * 86400_000))
}

export async function summary(base: string, from: string): Promise<Summary> {
  return api<Summary>('GET', `${base}?from=${from}`)
}

export function tokens(x: Totals): number {
  return x.input_tokens + x.output_tokens + x.cache_creation_tokens + x.cache_read_tokens
}

// perDay sums the per-model rows of each day over the last n days.
export function perDay(daily: Totals[], n: number, value: (x: Totals) => number) {
  const sums = new Map<string, number>()
  for (const d of daily) if (d.day) sums.set(d.day, (sums.get(d.day) ?? 0) + value(d))
  const out = []
  for (let i = n - 1; i >= 0; i--) {
    const day = daysAgo(i)
    out.push({ label: day.slice(5), value: sums.get(day) ?? 0 })
  }
  return out
}
