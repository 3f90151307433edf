// A QR code encoder (ISO/IEC 18004) for the two-factor page's otpauth:// address: byte mode,
// error correction level M, versions 1 to 10 (up to 213 bytes), drawn as SVG by the caller.
// Written here so the console needs no QR library.

// Blocks per version at level M: [ec codewords per block, data codewords of each block].
const BLOCKS_M: [number, number[]][] = [
  [10, [16]], [16, [28]], [26, [44]], [18, [32, 32]], [24, [43, 43]], [16, [27, 27, 27, 27]],
  [18, [31, 31, 31, 31]], [22, [38, 38, 39, 39]], [22, [36, 36, 36, 37, 37]], [26, [43, 43, 43, 43, 44]],
]
const ALIGN: number[][] = [[], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34], [6, 22, 38], [6, 24, 42], [6, 26, 46], [6, 28, 50]]

// gfMul multiplies in GF(256) modulo x^8 + x^4 + x^3 + x^2 + 1.
function gfMul(x: number, y: number): number {
  let z = 0
  for (let i = 7; i >= 0; i--) {
    z = (z << 1) ^ ((z >>> 7) * 0x11d)
    z ^= ((y >>> i) & 1) * x
  }
  return z
}

// ecCodewords is the Reed–Solomon remainder of data for a generator of the given degree.
function ecCodewords(data: number[], degree: number): number[] {
  const gen = new Array(degree).fill(0)
  gen[degree - 1] = 1
  let root = 1
  for (let i = 0; i < degree; i++) {
    for (let j = 0; j < degree; j++) {
      gen[j] = gfMul(gen[j], root)
      if (j + 1 < degree) gen[j] ^= gen[j + 1]
    }
    root = gfMul(root, 2)
  }
  const rem = new Array(degree).fill(0)
  for (const b of data) {
    const f = b ^ rem.shift()!
    rem.push(0)
    for (let i = 0; i < degree; i++) rem[i] ^= gfMul(gen[i], f)
  }
  return rem
}

// codewords encodes text's UTF-8 bytes for version v (1-based), interleaved with their EC.
function codewords(bytes: Uint8Array, v: number): number[] {
  const [ec, blocks] = BLOCKS_M[v - 1]
  const capacity = blocks.reduce((a, b) => a + b, 0)
  const bits: number[] = []
  const put = (val: number, n: number) => { for (let i = n - 1; i >= 0; i--) bits.push((val >>> i) & 1) }
  put(0b0100, 4)
  put(bytes.length, v < 10 ? 8 : 16)
  for (const b of bytes) put(b, 8)
  put(0, Math.min(4, capacity * 8 - bits.length))
  put(0, (8 - (bits.length % 8)) % 8)
  const data: number[] = []
  for (let i = 0; i < bits.length; i += 8) data.push(parseInt(bits.slice(i, i + 8).join(''), 2))
  for (let pad = 0xec; data.length < capacity; pad ^= 0xec ^ 0x11) data.push(pad)
  const split: number[][] = []
  let off = 0
  for (const n of blocks) {
    split.push(data.slice(off, off + n))
    off += n
  }
  const ecs = split.map((d) => ecCodewords(d, ec))
  const out: number[] = []
  for (let i = 0; i < Math.max(...blocks); i++) for (const d of split) if (i < d.length) out.push(d[i])
  for (let i = 0; i < ec; i++) for (const e of ecs) out.push(e[i])
  return out
}

const MASKS: ((r: number, c: number) => boolean)[] = [
  (r, c) => (r + c) % 2 === 0, (r) => r % 2 === 0, (_, c) => c % 3 === 0, (r, c) => (r + c) % 3 === 0,
  (r, c) => (Math.floor(r / 2) + Math.floor(c / 3)) % 2 === 0, (r, c) => ((r * c) % 2) + ((r * c) % 3) === 0,
  (r, c) => (((r * c) % 2) + ((r * c) % 3)) % 2 === 0, (r, c) => (((r + c) % 2) + ((r * c) % 3)) % 2 === 0,
]

// qrMatrix returns the QR code of text as rows of dark (true) modules, or null when it does
// not fit version 10.
export function qrMatrix(text: string): boolean[][] | null {
  const bytes = new TextEncoder().encode(text)
  let v = 1
  while (v <= 10 && 4 + (v < 10 ? 8 : 16) + 8 * bytes.length > 8 * BLOCKS_M[v - 1][1].reduce((a, b) => a + b, 0)) v++
  if (v > 10) return null
  const size = 17 + 4 * v
  const m = Array.from({ length: size }, () => new Array<boolean>(size).fill(false))
  const fn = Array.from({ length: size }, () => new Array<boolean>(size).fill(false))
  const set = (r: number, c: number, dark: boolean) => { m[r][c] = dark; fn[r][c] = true }

  for (let i = 0; i < size; i++) {
    set(6, i, i % 2 === 0)
    set(i, 6, i % 2 === 0)
  }
  for (const [cr, cc] of [[3, 3], [3, size - 4], [size - 4, 3]]) {
    for (let dr = -4; dr <= 4; dr++) {
      for (let dc = -4; dc <= 4; dc++) {
        const r = cr + dr, c = cc + dc
        if (r < 0 || r >= size || c < 0 || c >= size) continue
        const d = Math.max(Math.abs(dr), Math.abs(dc))
        set(r, c, d !== 2 && d !== 4)
      }
    }
  }
  const al = ALIGN[v - 1]
  for (let i = 0; i < al.length; i++) {
    for (let j = 0; j < al.length; j++) {
      if ((i === 0 && j === 0) || (i === 0 && j === al.length - 1) || (i === al.length - 1 && j === 0)) continue
      for (let dr = -2; dr <= 2; dr++) for (let dc = -2; dc <= 2; dc++) set(al[i] + dr, al[j] + dc, Math.max(Math.abs(dr), Math.abs(dc)) !== 1)
    }
  }
  // Reserve the format areas (drawn after masking) and draw the version information.
  const format = (mask: number) => {
    const data = (0 << 3) | mask // level M is 00
    let rem = data
    for (let i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537)
    const bits = ((data << 10) | rem) ^ 0x5412
    const bit = (i: number) => ((bits >>> i) & 1) === 1
    for (let i = 0; i <= 5; i++) set(i, 8, bit(i))
    set(7, 8, bit(6))
    set(8, 8, bit(7))
    set(8, 7, bit(8))
    for (let i = 9; i < 15; i++) set(8, 14 - i, bit(i))
    for (let i = 0; i < 8; i++) set(8, size - 1 - i, bit(i))
    for (let i = 8; i < 15; i++) set(size - 15 + i, 8, bit(i))
    set(size - 8, 8, true)
  }
  format(0)
  if (v >= 7) {
    let rem = v
    for (let i = 0; i < 12; i++) rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25)
    const bits = (v << 12) | rem
    for (let i = 0; i < 18; i++) {
      const dark = ((bits >>> i) & 1) === 1
      const a = size - 11 + (i % 3), b = Math.floor(i / 3)
      set(b, a, dark)
      set(a, b, dark)
    }
  }
  // The data, in two-column zigzags from the bottom right, skipping the timing column.
  const cw = codewords(bytes, v)
  let k = 0
  for (let right = size - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5
    for (let vert = 0; vert < size; vert++) {
      for (let j = 0; j < 2; j++) {
        const c = right - j
        const r = ((right + 1) & 2) === 0 ? size - 1 - vert : vert
        if (fn[r][c]) continue
        if (k < cw.length * 8) m[r][c] = ((cw[k >>> 3] >>> (7 - (k & 7))) & 1) === 1
        k++
      }
    }
  }
  // The mask with the lowest penalty.
  let best = m, bestScore = Infinity
  for (let mask = 0; mask < 8; mask++) {
    const t = m.map((row, r) => row.map((d, c) => (fn[r][c] ? d : d !== MASKS[mask](r, c))))
    const saved = m.map((row) => row.slice())
    for (let r = 0; r < size; r++) m[r] = t[r]
    format(mask)
    const score = penalty(m)
    if (score < bestScore) {
      best = m.map((row) => row.slice())
      bestScore = score
    }
    for (let r = 0; r < size; r++) m[r] = saved[r]
  }
  return best
}

// penalty scores a masked symbol as the standard does (lower scans better): runs, 2×2 blocks,
// finder-like patterns and the balance of dark and light.
function penalty(m: boolean[][]): number {
  const n = m.length
  let score = 0
  const lines: boolean[][] = [...m, ...m.map((_, c) => m.map((row) => row[c]))]
  const finder = [true, false, true, true, true, false, true]
  for (const line of lines) {
    let run = 1
    for (let i = 1; i <= n; i++) {
      if (i < n && line[i] === line[i - 1]) run++
      else {
        if (run >= 5) score += run - 2
        run = 1
      }
    }
    for (let i = 0; i + 7 <= n; i++) {
      if (!finder.every((d, j) => line[i + j] === d)) continue
      const lightBefore = i >= 4 && [1, 2, 3, 4].every((j) => !line[i - j])
      const lightAfter = i + 11 <= n && [7, 8, 9, 10].every((j) => !line[i + j])
      if (lightBefore || lightAfter) score += 40
    }
  }
  let dark = 0
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (m[r][c]) dark++
      if (r + 1 < n && c + 1 < n && m[r][c] === m[r][c + 1] && m[r][c] === m[r + 1][c] && m[r][c] === m[r + 1][c + 1]) score += 3
    }
  }
  return score + 10 * Math.floor(Math.abs((dark * 20) / (n * n) - 10))
}

// qrPath draws the dark modules as one SVG path, with a quiet zone of four modules.
export function qrPath(m: boolean[][]): string {
  let d = ''
  m.forEach((row, r) => row.forEach((dark, c) => { if (dark) d += `M${c + 4} ${r + 4}h1v1h-1z` }))
  return d
}
