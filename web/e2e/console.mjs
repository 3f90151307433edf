// The console's browser scenario, run by test/console (go test): a real server on SQLite and
// the mock Anthropic upstream, Debian's chromium driven by playwright-core. Any failed check
// throws, and the process exits non-zero.
import { chromium } from 'playwright-core'
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { createHmac } from 'node:crypto'
import { join } from 'node:path'

const BASE = process.env.BASE_URL
const MOCK = process.env.MOCK_URL
const ADMIN_EMAIL = process.env.ADMIN_EMAIL
const GENERATED = process.env.ADMIN_PASSWORD
const SHOTS = process.env.SCREENSHOTS
const NEW_ADMIN_PASSWORD = 'console-admin-password-2'
const USER_EMAIL = 'alice@example.com'
const USER_PASSWORD = 'alice-password-1'
const DESKTOP = { width: 1280, height: 860 }
const PHONE = { width: 390, height: 844 }

// totp computes an RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32 secret at a step.
function totp(secret, step) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  let bits = ''
  for (const ch of secret.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0')
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)))
  const msg = Buffer.alloc(8)
  msg.writeBigUInt64BE(BigInt(step))
  const sum = createHmac('sha1', key).update(msg).digest()
  const off = sum[sum.length - 1] & 0x0f
  return String((sum.readUInt32BE(off) & 0x7fffffff) % 1_000_000).padStart(6, '0')
}

async function apiCall(method, path, token, body) {
  const res = await fetch(BASE + '/api/v1' + path, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: 'Bearer ' + token } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return text ? JSON.parse(text) : null
}

// userToken signs in through the API (as a script would) and returns the bearer token.
async function userToken(email, password) {
  return (await apiCall('POST', '/auth/login', null, { email, password })).token
}

// nanos reads a shown amount ("$15.0000") into an exact count of 10^-9 dollars.
function nanos(shown) {
  const [i, f = ''] = shown.replace('$', '').split('.')
  return BigInt(i) * 1_000_000_000n + BigInt((f + '000000000').slice(0, 9))
}

function check(cond, msg) {
  if (!cond) throw new Error('check failed: ' + msg)
  console.log('ok -', msg)
}

mkdirSync(SHOTS, { recursive: true })
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] })
const violations = []

async function newPage(locale, viewport = DESKTOP) {
  const ctx = await browser.newContext({ locale, viewport })
  const page = await ctx.newPage()
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text())
  })
  page.on('pageerror', (e) => violations.push('page error: ' + e.message))
  // Destructive actions ask in the page's own dialog; a native one would be a regression.
  page.on('dialog', (d) => { violations.push('native dialog: ' + d.message()); d.dismiss() })
  return page
}

async function signIn(page, email, password) {
  await page.goto(BASE + '/')
  await page.waitForURL(/\/login/)
  await page.fill('#email', email)
  await page.fill('#password', password)
  await page.click('form button[type=submit]')
}

async function text(page, sel) {
  return (await page.locator(sel).first().textContent())?.trim()
}

try {
  // --- The admin's first sign-in: the generated password must be replaced.
  const admin = await newPage('en-US')
  await signIn(admin, ADMIN_EMAIL, GENERATED)
  await admin.waitForURL(/\/password$/)
  check((await admin.locator('.notice').textContent()).includes('generated'), 'the first sign-in asks to replace the generated password')
  check((await admin.locator('nav').count()) === 0, 'no navigation before the password is changed')
  // A too-short password: the API's words appear at the field.
  await admin.fill('#old_password', GENERATED)
  await admin.fill('#new_password', 'short')
  await admin.fill('#repeat', 'short')
  await admin.click('form button[type=submit]')
  const pwErr = admin.locator('#new_password-error')
  await pwErr.waitFor()
  check(/new_password must have \d+ to \d+ characters/.test(await pwErr.textContent()), 'a form error names the field in the API\'s words: ' + (await pwErr.textContent()))
  await admin.fill('#new_password', NEW_ADMIN_PASSWORD)
  await admin.fill('#repeat', NEW_ADMIN_PASSWORD)
  await admin.click('form button[type=submit]')
  await admin.waitForURL(/\/admin$/)
  check(true, 'the admin changed the password and reached the overview')
  const cookies = await admin.context().cookies()
  const session = cookies.find((c) => c.name === 'fluxcode_session')
  check(session && session.httpOnly && session.sameSite === 'Strict', 'the session is an HttpOnly SameSite=Strict cookie')
  check((await admin.evaluate(() => document.cookie)).indexOf('fluxcode_session') < 0, 'page script cannot read the session cookie')

  // --- A group: first an empty name (the field error), then a real one.
  await admin.click('nav >> text=Groups')
  await admin.waitForURL(/\/admin\/groups$/)
  await admin.click('form button[type=submit]')
  const nameErr = admin.locator('#g-name-error')
  await nameErr.waitFor()
  check((await nameErr.textContent()).includes('name'), 'an empty group name is reported at the name field: ' + (await nameErr.textContent()))
  await admin.fill('#g-name', 'default')
  await admin.click('form button[type=submit]')
  await admin.locator('table >> text=default').waitFor()
  check(true, 'group created')

  // --- An account on the mock upstream, in that group.
  await admin.click('nav >> text=Accounts')
  await admin.fill('#a-name', 'mock-anthropic')
  await admin.fill('#a-key', 'sk-ant-console-test')
  await admin.fill('#a-base', MOCK)
  await admin.selectOption('#a-groups', { label: 'default' })
  await admin.click('form button[type=submit]')
  await admin.locator('table >> text=mock-anthropic').waitFor()
  check(true, 'account created')

  // --- Editing it: a new base URL without the key again is refused in the API's words (the
  // stored key is never sent to a new host unasked); a new priority and mapping are saved.
  const accRow = admin.locator('[data-testid=accounts-table] tr', { hasText: 'mock-anthropic' })
  await accRow.locator('button', { hasText: 'Edit' }).click()
  check((await admin.inputValue('#a-base')) === MOCK && (await admin.inputValue('#a-key')) === '', 'the edit form holds the account, not its key')
  await admin.fill('#a-base', MOCK + '/elsewhere')
  await admin.fill('#a-prio', '7')
  await admin.click('[data-testid=account-form] button[type=submit]')
  await admin.locator('#a-key-error').waitFor()
  check((await text(admin, '#a-key-error')).includes('credentials are required'), 'a changed base URL asks for the key again: ' + (await text(admin, '#a-key-error')))
  await admin.fill('#a-base', MOCK)
  await admin.fill('#a-map', 'claude-sonnet-5-5=claude-sonnet-5-5')
  await admin.click('[data-testid=account-form] button[type=submit]')
  await accRow.locator('td.sched', { hasText: 'Priority 7' }).waitFor()
  check((await admin.locator('#a-key-error').count()) === 0, 'the edit saved the priority without re-entering the key')

  // An OpenAI account with an organization: stored with the key (the edit form names the
  // stored credential fields, never their values).
  await admin.fill('#a-name', 'openai-main')
  await admin.selectOption('#a-platform', 'openai')
  await admin.fill('#a-key', 'sk-openai-console-test')
  await admin.fill('#a-org', 'org-console')
  await admin.click('[data-testid=account-form] button[type=submit]')
  const oaRow = admin.locator('[data-testid=accounts-table] tr', { hasText: 'openai-main' })
  await oaRow.waitFor()
  await oaRow.locator('button', { hasText: 'Edit' }).click()
  check((await text(admin, '[data-testid=account-form] .hint')).includes('api_key, extra.organization'), 'an OpenAI account keeps its organization with the key')
  await admin.click('[data-testid=account-form] button:has-text("Cancel")')

  // --- A Claude login onboarded through the mock's OAuth server: start shows the sign-in
  // address; a refused code is reported at the code field in the API's words; after a new
  // start, pasting the address the sign-in lands on creates the account, which can be renewed.
  const cl = admin.locator('[data-testid=sub-login]')
  const startLogin = async (authorize = '/oauth/authorize') => {
    await cl.locator('button[type=submit]').click()
    await admin.locator('#cl-url').waitFor()
    const url = await admin.inputValue('#cl-url')
    check(url.startsWith(MOCK + authorize + '?') && url.includes('code_challenge='), 'the sign-in starts at the OAuth server: ' + url)
    return url
  }
  await admin.fill('#cl-name', 'claude-sub')
  await admin.fill('#cl-base', MOCK)
  // In the group the user's key will use, ahead of the API-key account (priority 0 before 7),
  // so the user's request goes through this login and its windows get figures.
  await admin.selectOption('#cl-groups', { label: 'default' })
  await startLogin()
  await admin.fill('#cl-code', 'not-a-real-code')
  await cl.locator('button[type=submit]').click()
  await admin.locator('#cl-code-error').waitFor()
  check((await text(admin, '#cl-code-error')).includes('refused the code'), 'a refused code is reported at the code field: ' + (await text(admin, '#cl-code-error')))
  await cl.locator('button:has-text("Cancel")').click()
  const signedIn = await fetch(await startLogin(), { redirect: 'manual' })
  check(signedIn.status === 302, 'the mock sign-in redirects with the code')
  await admin.fill('#cl-code', signedIn.headers.get('location'))
  await cl.locator('button[type=submit]').click()
  await admin.locator('[data-testid=sub-login-done]').waitFor()
  const done = await text(admin, '[data-testid=sub-login-done]')
  check(done.includes('claude-sub') && /user-\S+@example\.com/.test(done), 'the finished sign-in names the account and its e-mail: ' + done)
  const clRow = admin.locator('[data-testid=accounts-table] tr', { hasText: 'claude-sub' })
  await clRow.waitFor()
  const [renewed] = await Promise.all([
    admin.waitForResponse((r) => r.url().endsWith('/refresh')),
    clRow.locator('button', { hasText: 'Refresh now' }).click(),
  ])
  check(renewed.status() === 200, 'renewing the login now succeeds: ' + renewed.status())

  // The same form signs in a ChatGPT (Codex) login when the platform is OpenAI: the sign-in
  // goes to OpenAI's authorize address (here the mock's) and the account id is reported.
  await admin.selectOption('#cl-platform', 'openai')
  check((await admin.locator('#cl-kind').count()) === 0, 'a ChatGPT login has one kind only')
  await admin.fill('#cl-name', 'codex-sub')
  await admin.fill('#cl-base', MOCK)
  const codexSignIn = await fetch(await startLogin(), { redirect: 'manual' })
  check(codexSignIn.status === 302, 'the mock ChatGPT sign-in redirects with the code')
  await admin.fill('#cl-code', codexSignIn.headers.get('location'))
  await cl.locator('button[type=submit]').click()
  await admin.locator('[data-testid=sub-login-done]', { hasText: 'codex-sub' }).waitFor()
  const codexDone = await text(admin, '[data-testid=sub-login-done]')
  check(/Account id: \S+/.test(codexDone), 'the finished ChatGPT sign-in names its account id: ' + codexDone)
  const codexRow = admin.locator('[data-testid=accounts-table] tr', { hasText: 'codex-sub' })
  await codexRow.locator('small', { hasText: 'openai · oauth' }).waitFor()
  check(true, 'the ChatGPT login is listed as an OpenAI OAuth account')

  // And a Gemini CLI login when the platform is Gemini: Google's sign-in (the mock's), then
  // Code Assist finds or makes the login's project, which the finished sign-in reports.
  await admin.selectOption('#cl-platform', 'gemini')
  await admin.fill('#cl-name', 'gemini-cli')
  await admin.fill('#cl-base', MOCK)
  const googleSignIn = await fetch((await startLogin('/o/oauth2/v2/auth')) + '&login_hint=ada%40example.com', { redirect: 'manual' })
  check(googleSignIn.status === 302, 'the mock Google sign-in redirects with the code')
  await admin.fill('#cl-code', googleSignIn.headers.get('location'))
  await cl.locator('button[type=submit]').click()
  await admin.locator('[data-testid=sub-login-done]', { hasText: 'gemini-cli' }).waitFor()
  const geminiDone = await text(admin, '[data-testid=sub-login-done]')
  check(geminiDone.includes('ada@example.com') && /Code Assist project: \S+/.test(geminiDone), 'the finished Gemini CLI sign-in names its e-mail and project: ' + geminiDone)
  await admin.locator('[data-testid=accounts-table] tr', { hasText: 'gemini-cli' }).locator('small', { hasText: 'gemini · oauth' }).waitFor()
  check(true, 'the Gemini CLI login is listed as a Gemini OAuth account')
  // At 1280 px the accounts table fits the page: nothing to scroll sideways.
  const overflow = await admin.evaluate(() => { const w = document.querySelector('.accounts .table-wrap'); return w.scrollWidth - w.clientWidth })
  check(overflow <= 0, 'the accounts table fits a 1280 px window: ' + overflow + ' px too wide')

  // --- A user with a balance.
  await admin.click('nav >> text=Users')
  await admin.fill('#u-email', USER_EMAIL)
  await admin.fill('#u-password', USER_PASSWORD)
  await admin.click('form button[type=submit]')
  const row = admin.locator('tr', { hasText: USER_EMAIL })
  await row.waitFor()
  await row.locator('button', { hasText: 'Edit' }).click()
  await admin.fill('#adj-amount', 'abc')
  await admin.click('[data-testid=user-panel] form:first-of-type button[type=submit]')
  await admin.locator('#adj-amount-error').waitFor()
  check(true, 'a bad amount is reported at the amount field: ' + (await text(admin, '#adj-amount-error')))
  await admin.fill('#adj-amount', '10')
  await admin.fill('#adj-note', 'welcome credit')
  await admin.click('[data-testid=user-panel] form:first-of-type button[type=submit]')
  await admin.locator('tr', { hasText: USER_EMAIL }).locator('text=$10.0000').waitFor()
  check(true, 'user created with a balance of $10')

  // --- The user list filters on the server.
  await admin.fill('#f-search', 'ALICE')
  await admin.click('[data-testid=filters] button[type=submit]')
  await admin.locator('[data-testid=users-table] tr', { hasText: ADMIN_EMAIL }).waitFor({ state: 'detached' })
  check((await admin.locator('[data-testid=users-table] tbody tr').count()) === 1 && (await text(admin, '.pager span')).includes('1'),
    'a search narrows the user list on the server: ' + (await text(admin, '.pager span')))
  await admin.click('[data-testid=filters] button[type=button]')
  await admin.locator('[data-testid=users-table] tr', { hasText: ADMIN_EMAIL }).waitFor()
  check(true, 'reset shows every user again')

  // --- The user, in a browser that prefers Chinese.
  const user = await newPage('zh-CN')
  await signIn(user, USER_EMAIL, USER_PASSWORD)
  await user.waitForURL(/\/dashboard$/)
  check((await text(user, 'nav')).includes('仪表盘'), 'a Chinese-preferring browser gets the Chinese console')
  check((await text(user, '[data-testid=balance]')) === '$10.0000', 'the user sees the balance')
  await user.click('nav >> text=API 密钥')
  await user.fill('#key-name', '<img src=x onerror=alert(1)>')
  await user.click('form button[type=submit]')
  const keyEl = user.locator('[data-testid=new-key]')
  await keyEl.waitFor()
  const key = (await keyEl.textContent()).trim()
  check(key.length > 20, 'the new key is shown once')
  await user.locator('td', { hasText: '<img src=x onerror=alert(1)>' }).waitFor()
  check((await user.locator('td img').count()) === 0, 'a user-chosen name is rendered as text, not markup')

  // --- A request through the gateway with that key.
  const res = await fetch(BASE + '/v1/messages', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': key, 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model: 'claude-sonnet-5-5', max_tokens: 32, messages: [{ role: 'user', content: 'hello from the console test' }] }),
  })
  const answer = await res.text()
  check(res.status === 200, 'the gateway served the key: ' + res.status + ' ' + answer.slice(0, 200))
  // And one the gateway refuses (a wrong key), for the error rate.
  const refused = await fetch(BASE + '/v1/messages', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': 'fk-not-a-key', 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model: 'claude-sonnet-5-5', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] }),
  })
  check(refused.status === 401, 'a wrong key is refused: ' + refused.status)

  // The user's dashboard shows it with its cost.
  await user.click('nav >> text=仪表盘')
  await user.locator('[data-testid=today-requests]', { hasText: '1' }).waitFor()
  const userCost = await text(user, '[data-testid=today-cost]')
  check(userCost !== '$0.0000' && userCost.startsWith('$'), 'the user dashboard shows the request and its cost ' + userCost)
  await user.click('nav >> text=用量')
  await user.locator('[data-testid=usage-table] >> text=claude-sonnet-5-5').waitFor()
  check(true, 'the usage log lists the request')

  // The language switch.
  await user.selectOption('[data-testid=lang]', 'en')
  await user.locator('nav >> text=Dashboard').waitFor()
  check(!(await text(user, 'nav')).includes('仪表盘'), 'the language switch changes the text to English')
  await user.selectOption('[data-testid=lang]', 'zh-CN')
  await user.locator('nav >> text=仪表盘').waitFor()
  check(true, 'and back to Chinese')

  // The admin's overview shows it with the same cost.
  await admin.click('nav >> text=Overview')
  await admin.reload()
  await admin.locator('[data-testid=admin-today-requests]', { hasText: '1' }).waitFor()
  const adminCost = await text(admin, '[data-testid=admin-today-cost]')
  check(adminCost === userCost, `the admin overview shows the request and the same cost (${adminCost})`)
  await admin.locator('td', { hasText: 'mock-anthropic' }).waitFor()
  // The error rate: every request counts, the refused one too. Nodes add their counts to the
  // database every few seconds, so the page is reloaded until they are there.
  for (let i = 0; i < 40 && (await text(admin, '[data-testid=admin-today-errors]')) !== '50.0%'; i++) {
    await new Promise((r) => setTimeout(r, 1000))
    await admin.reload()
    await admin.locator('[data-testid=admin-today-requests]').waitFor()
  }
  check((await text(admin, '[data-testid=admin-today-errors]')) === '50.0%', 'the overview shows today\'s error rate: one of two requests failed')
  check((await admin.locator('[data-testid=error-chart] rect').count()) === 14, 'and a chart of it over 14 days')

  // The Claude login served the request: its usage windows show with the upstream's figures.
  await admin.click('nav >> text=Accounts')
  const windows = admin.locator('[data-testid=accounts-table] tr', { hasText: 'claude-sub' }).locator('td.windows')
  await windows.locator('span', { hasText: '42%' }).waitFor()
  check((await windows.textContent()).includes('63%'), 'the accounts page shows the login\'s subscription windows: ' + (await windows.textContent()).trim())
  // Its figures count the request (the ledger is written in the background, hence the reloads).
  const claudeFigures = admin.locator('[data-testid=accounts-table] tr', { hasText: 'claude-sub' }).locator('[data-testid=figures]')
  for (let i = 0; i < 20 && !(await claudeFigures.textContent()).includes('Today: 1 req'); i++) {
    await new Promise((r) => setTimeout(r, 1000))
    await admin.reload()
    await claudeFigures.waitFor()
  }
  check((await claudeFigures.textContent()).includes('Today: 1 req'), 'the account\'s figures count today\'s request: ' + (await claudeFigures.textContent()).trim())
  // The test button sends one small request through the account and shows the answer and its latency.
  const mockRow = admin.locator('[data-testid=accounts-table] tr', { hasText: 'mock-anthropic' })
  await mockRow.locator('button', { hasText: 'Test' }).click()
  await mockRow.locator('[data-testid=test-result]').waitFor()
  check(/^OK 200 in \d+ ms/.test(await text(mockRow, '[data-testid=test-result]')), 'testing an account shows its answer and latency: ' + (await text(mockRow, '[data-testid=test-result]')))

  // --- An admin API key: created in the console and shown once; a script then uses it (as
  // Bearer) for the admin API, which the checks below read to see each page's effect.
  await admin.click('nav >> text=Admin API keys')
  await admin.fill('#ak-name', 'ci-script')
  await admin.click('[data-testid=admin-key-create] button[type=submit]')
  const adminKey = (await admin.locator('[data-testid=new-admin-key]').textContent()).trim()
  check(adminKey.startsWith('fkadmin-'), 'a new admin API key is shown once')
  await admin.locator('[data-testid=admin-keys-table] tr', { hasText: 'ci-script' }).filter({ hasText: ADMIN_EMAIL }).waitFor()
  const asAdmin = (method, path, body) => apiCall(method, path, adminKey, body)
  check((await asAdmin('GET', '/admin/admin-keys')).items.some((k) => k.name === 'ci-script' && k.status === 'active'), 'the admin API key works as Bearer and lists itself')

  // --- An exclusive subscription group, created and then edited in the group form.
  await admin.click('nav >> text=Groups')
  await admin.fill('#g-name', 'vip')
  await admin.selectOption('#g-billing', 'subscription')
  await admin.fill('#g-daily', '5')
  await admin.check('#g-excl')
  await admin.click('[data-testid=group-form] button[type=submit]')
  const vipRow = admin.locator('[data-testid=groups-table] tr', { hasText: 'vip' })
  await vipRow.locator('.tag', { hasText: 'exclusive' }).waitFor()
  await vipRow.locator('button', { hasText: 'Edit' }).click()
  check((await admin.inputValue('#g-daily')) === '5.0000' && (await admin.isChecked('#g-excl')), 'the group form holds the group to edit')
  await admin.fill('#g-mult', '2')
  await admin.click('[data-testid=group-form] button[type=submit]')
  await vipRow.locator('td', { hasText: '×2' }).waitFor()
  const vip = (await asAdmin('GET', '/admin/groups?search=vip')).items[0]
  check(vip.exclusive === true && Number(vip.rate_multiplier) === 2 && vip.daily_limit.startsWith('5.'), 'the API holds the exclusive group as edited: ' + JSON.stringify(vip))

  // --- The user may use it: the user panel lists the exclusive groups to allow.
  const alice = (await asAdmin('GET', '/admin/users?search=alice')).items[0]
  check(!(await apiCall('GET', '/groups', await userToken(USER_EMAIL, USER_PASSWORD))).items.some((g) => g.name === 'vip'), 'an exclusive group is closed to a user not allowed on it')
  await admin.click('nav >> text=Users')
  await admin.locator('tr', { hasText: USER_EMAIL }).locator('button', { hasText: 'Edit' }).click()
  await admin.check(`#ug-${vip.id}`)
  await admin.fill('#adj-rpm', '600')
  await admin.click('[data-testid=user-panel] form:nth-of-type(2) button[type=submit]')
  await admin.click('[data-testid=user-groups] button[type=submit]')
  await admin.locator('[data-testid=user-groups] .ok').waitFor()
  const aliceNow = await asAdmin('GET', `/admin/users/${alice.id}`)
  check(JSON.stringify(aliceNow.allowed_group_ids) === JSON.stringify([vip.id]) && aliceNow.rpm_limit === 600, 'the API holds the user\'s allowed group and rate limit: ' + JSON.stringify(aliceNow))

  // --- Bulk changes of ticked accounts: the two OpenAI ones disabled and enabled again, the
  // API-key account moved into both Anthropic groups.
  await admin.click('nav >> text=Accounts')
  const box = (name) => admin.locator('[data-testid=accounts-table] tr', { hasText: name }).locator('input[type=checkbox]')
  const accountsByName = async () => Object.fromEntries((await asAdmin('GET', '/admin/accounts?page_size=200')).items.map((a) => [a.name, a]))
  await box('openai-main').check()
  await box('codex-sub').check()
  await admin.locator('[data-testid=bulk] button', { hasText: 'Disable' }).click()
  const codexStatus = admin.locator('[data-testid=accounts-table] tr', { hasText: 'codex-sub' }).locator('td.status')
  await codexStatus.filter({ hasText: 'disabled' }).waitFor()
  let accs = await accountsByName()
  check(accs['openai-main'].status === 'disabled' && accs['codex-sub'].status === 'disabled' && accs['mock-anthropic'].status === 'active', 'a bulk disable changes exactly the ticked accounts')
  await admin.locator('[data-testid=bulk] button', { hasText: 'Enable' }).click()
  await codexStatus.filter({ hasText: 'active' }).waitFor()
  accs = await accountsByName()
  check(accs['openai-main'].status === 'active' && accs['codex-sub'].status === 'active', 'and a bulk enable turns them back on')
  await box('openai-main').uncheck()
  await box('codex-sub').uncheck()
  await box('mock-anthropic').check()
  await admin.selectOption('#bulk-groups', [{ label: 'default' }, { label: 'vip' }])
  await admin.locator('[data-testid=bulk] button[type=submit]').click()
  await admin.locator('[data-testid=accounts-table] tr', { hasText: 'mock-anthropic' }).locator('td', { hasText: 'default, vip' }).waitFor()
  accs = await accountsByName()
  check(JSON.stringify(accs['mock-anthropic'].group_ids) === JSON.stringify([accs['claude-sub'].group_ids[0], vip.id]), 'a bulk move puts the ticked account in the chosen groups: ' + JSON.stringify(accs['mock-anthropic'].group_ids))

  // --- Redeem codes: a batch of balance codes and a subscription code, shown once; one is
  // disabled (asked first); the list filters on the server; the export is a CSV.
  await admin.click('nav >> text=Redeem codes')
  await admin.fill('#rc-count', '2')
  await admin.fill('#rc-amount', '5')
  await admin.fill('#rc-note', 'welcome batch')
  await admin.click('[data-testid=redeem-create] button[type=submit]')
  await admin.locator('[data-testid=redeem-issued] code').first().waitFor()
  const balanceCodes = (await admin.locator('[data-testid=redeem-issued] code').allTextContents()).map((c) => c.trim())
  check(balanceCodes.length === 2 && balanceCodes.every((c) => c.startsWith('rc-')), 'two balance codes are shown once')
  await admin.selectOption('#rc-kind', 'subscription')
  await admin.fill('#rc-count', '1')
  await admin.selectOption('#rc-group', { label: 'vip' })
  await admin.fill('#rc-days', '7')
  await admin.click('[data-testid=redeem-create] button[type=submit]')
  await admin.locator('[data-testid=redeem-table] tr', { hasText: 'vip, 7 days' }).waitFor()
  const subCode = (await text(admin, '[data-testid=redeem-issued] code'))
  check(subCode.startsWith('rc-') && !balanceCodes.includes(subCode) && (await admin.locator('[data-testid=redeem-issued] code').count()) === 1, 'and a subscription code')
  const toDisable = admin.locator('[data-testid=redeem-table] tr', { hasText: balanceCodes[1].slice(0, 8) })
  await toDisable.locator('button', { hasText: 'Disable' }).click()
  await admin.click('[data-testid=confirm-yes]')
  await toDisable.locator('td', { hasText: 'disabled' }).waitFor()
  await admin.selectOption('#f-status', 'disabled')
  await admin.click('[data-testid=filters] button[type=submit]')
  await admin.locator('[data-testid=redeem-table] tr', { hasText: 'vip' }).waitFor({ state: 'detached' })
  check((await admin.locator('[data-testid=redeem-table] tbody tr').count()) === 1, 'the status filter narrows the list on the server')
  await admin.click('[data-testid=filters] button[type=button]')
  const [csv] = await Promise.all([admin.waitForEvent('download'), admin.click('[data-testid=redeem-export]')])
  const csvText = readFileSync(await csv.path(), 'utf8').trim().split('\n')
  check(csvText[0].startsWith('id,prefix,kind,amount') && csvText.length === 4 && csvText.some((l) => l.includes('welcome batch')), 'the export is a CSV of every code: ' + csvText.length + ' lines')

  // --- The user redeems on the dashboard: a balance code raises the balance, the disabled one
  // is refused at the field, the subscription code opens the exclusive group's subscription.
  await user.click('nav >> text=仪表盘')
  const before = await text(user, '[data-testid=balance]')
  await user.fill('#redeem-code', balanceCodes[0])
  await user.click('[data-testid=redeem-form] button[type=submit]')
  await user.locator('[data-testid=redeemed]').waitFor()
  check((await text(user, '[data-testid=redeemed]')).includes('$5.0000'), 'redeeming says what it gave: ' + (await text(user, '[data-testid=redeemed]')))
  const after = await text(user, '[data-testid=balance]')
  check(nanos(after) - nanos(before) === 5_000_000_000n, `the balance went up by $5 (${before} → ${after})`)
  await user.fill('#redeem-code', balanceCodes[1])
  await user.click('[data-testid=redeem-form] button[type=submit]')
  await user.locator('#redeem-code-error').waitFor()
  check(true, 'a disabled code is refused at the field: ' + (await text(user, '#redeem-code-error')))
  await user.fill('#redeem-code', subCode)
  await user.click('[data-testid=redeem-form] button[type=submit]')
  await user.locator('[data-testid=redeemed]', { hasText: 'vip' }).waitFor()
  await user.locator('.card h3', { hasText: 'vip' }).waitFor()
  check(true, 'the subscription code shows the new subscription on the dashboard')
  const codes = (await asAdmin('GET', '/admin/redeem-codes')).items
  check(codes.filter((c) => c.used_by === alice.id).length === 2, 'the API records both redemptions against the user')
  await admin.reload() // the admin is still on the code list, read before the redemptions
  await admin.locator('[data-testid=redeem-table] tr', { hasText: 'vip, 7 days' }).filter({ hasText: USER_EMAIL }).waitFor()
  check(true, 'and the code list names who redeemed each')

  // --- A key's policy, set by an admin on the key: another model than the allowed pattern
  // is refused at the gateway with the policy reason; cleared, the key serves again.
  const gatewayAsk = () => fetch(BASE + '/v1/messages', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': key, 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model: 'claude-sonnet-5-5', max_tokens: 16, messages: [{ role: 'user', content: 'policy?' }] }),
  })
  await admin.click('nav >> text=All API keys')
  const kRow = admin.locator('[data-testid=keys-table] tr', { hasText: '<img src=x onerror=alert(1)>' })
  await kRow.locator('button', { hasText: 'Edit' }).click()
  await admin.fill('#ke-models', 'claude-haiku-*')
  await admin.fill('#ke-rpm', '100')
  await admin.click('[data-testid=key-edit] button[type=submit]')
  await admin.locator('[data-testid=key-edit]').waitFor({ state: 'detached' })
  const policed = (await asAdmin('GET', `/admin/users/${alice.id}/keys`)).items.find((k) => k.name.startsWith('<img'))
  check(JSON.stringify(policed.allowed_models) === '["claude-haiku-*"]' && policed.rpm_limit === 100, 'the API holds the key\'s policy: ' + JSON.stringify(policed.allowed_models))
  const refusedModel = await gatewayAsk()
  check(refusedModel.status === 403 && refusedModel.headers.get('x-fluxcode-reject') === 'policy', 'the gateway refuses a model outside the key\'s policy: ' + refusedModel.status)
  await kRow.locator('button', { hasText: 'Edit' }).click()
  check((await admin.inputValue('#ke-models')) === 'claude-haiku-*', 'the edit form holds the key\'s policy')
  await admin.fill('#ke-models', '')
  await admin.click('[data-testid=key-edit] button[type=submit]')
  await admin.locator('[data-testid=key-edit]').waitFor({ state: 'detached' })
  const servedAgain = await gatewayAsk()
  check(servedAgain.status === 200, 'with the policy cleared the key serves again: ' + servedAgain.status)

  // --- Model prices: a price override saved in the price table, a bad one refused in the
  // API's words, and unpriced models allowed.
  await admin.click('nav >> text=Model prices')
  await admin.click('[data-testid=price-add]')
  const last = (await admin.locator('[data-testid=prices-table] tbody tr').count()) - 1
  await admin.fill(`[data-testid=price-model-${last}]`, 'console-model')
  await admin.fill(`[data-testid=price-input-${last}]`, 'abc')
  await admin.fill(`[data-testid=price-output-${last}]`, '15')
  await admin.click('[data-testid=prices-form] button[type=submit]')
  await admin.locator('[data-testid=prices-error]').waitFor()
  check((await text(admin, '[data-testid=prices-error]')).includes('console-model'), 'a bad price is refused naming the model: ' + (await text(admin, '[data-testid=prices-error]')))
  await admin.fill(`[data-testid=price-input-${last}]`, '3')
  await admin.check('#pr-unpriced')
  await admin.click('[data-testid=prices-form] button[type=submit]')
  await admin.locator('[data-testid=prices-form] .ok').waitFor()
  const settings = await asAdmin('GET', '/admin/settings')
  const price = settings.model_prices['console-model']
  check(settings.allow_unpriced_models === true && price.input_cost_per_token === 3e-6 && price.output_cost_per_token === 15e-6,
    'the API holds the price per token and allows unpriced models: ' + JSON.stringify(price))

  // --- Screenshots of every main page, both languages, desktop and phone width.
  const userPages = [['dashboard', '/dashboard'], ['keys', '/keys'], ['usage', '/usage'], ['use-with', '/use-with'], ['two-factor', '/2fa']]
  const adminPages = [['admin-overview', '/admin'], ['admin-users', '/admin/users'], ['admin-groups', '/admin/groups'],
    ['admin-accounts', '/admin/accounts'], ['admin-keys', '/admin/keys'], ['admin-proxies', '/admin/proxies'], ['admin-rules', '/admin/rules'],
    ['admin-usage', '/admin/usage'], ['admin-settings', '/admin/settings'], ['admin-redeem', '/admin/redeem-codes'],
    ['admin-prices', '/admin/prices'], ['admin-api-keys', '/admin/admin-keys']]
  for (const [lang, tag] of [['en', 'en'], ['zh-CN', 'zh']]) {
    for (const [vp, vpName] of [[DESKTOP, 'desktop'], [PHONE, 'phone']]) {
      const login = await newPage(lang, vp)
      await login.goto(BASE + '/login')
      await login.locator('#email').waitFor()
      await login.screenshot({ path: join(SHOTS, `login-${tag}-${vpName}.png`) })
      await login.context().close()
      for (const [p, pages] of [[user, userPages], [admin, adminPages]]) {
        await p.setViewportSize(vp)
        await p.selectOption('[data-testid=lang]', lang)
        for (const [name, path] of pages) {
          await p.goto(BASE + path)
          await p.locator('main h1').waitFor()
          await p.waitForLoadState('networkidle')
          await p.screenshot({ path: join(SHOTS, `${name}-${tag}-${vpName}.png`), fullPage: vpName === 'desktop' })
        }
      }
    }
  }
  check(true, 'screenshots written to ' + SHOTS)

  // The phone layout hides the navigation behind the menu button, which opens it.
  await user.setViewportSize(PHONE)
  await user.goto(BASE + '/dashboard')
  await user.locator('main h1').waitFor()
  check(!(await user.locator('nav').isVisible()), 'at phone width the navigation is folded')
  await user.click('.menu-btn')
  check(await user.locator('nav').isVisible(), 'the menu button opens it')

  // --- The confirmation dialog: deleting a key asks in an accessible in-page dialog; Escape
  // and Cancel keep the key, Confirm deletes it.
  await user.setViewportSize(DESKTOP)
  await user.selectOption('[data-testid=lang]', 'en')
  await user.goto(BASE + '/keys')
  await user.fill('#key-name', 'temporary')
  await user.click('form button[type=submit]')
  const tempRow = user.locator('tr', { hasText: 'temporary' })
  await tempRow.waitFor()
  await tempRow.locator('button', { hasText: 'Delete' }).click()
  const dialog = user.locator('[data-testid=confirm]')
  await dialog.waitFor()
  check((await dialog.getAttribute('role')) === 'alertdialog' && (await text(user, '#confirm-message')).includes('temporary'),
    'deleting asks in a labelled in-page dialog: ' + (await text(user, '#confirm-message')))
  check(await user.evaluate(() => document.activeElement?.getAttribute('data-testid') === 'confirm-no'), 'the dialog starts on Cancel')
  await user.keyboard.press('Escape')
  await dialog.waitFor({ state: 'hidden' })
  check((await tempRow.count()) === 1, 'Escape keeps the key')
  await tempRow.locator('button', { hasText: 'Delete' }).click()
  await user.click('[data-testid=confirm-yes]')
  await tempRow.waitFor({ state: 'detached' })
  check(true, 'confirming deletes the key')

  // --- Two-factor sign-in: the user enrols in the console (the secret is shown as text), then
  // the console asks for the code after the password. The enrolment is confirmed with the code
  // of the previous step (inside the allowed skew), so the sign-in's current code is not a
  // replay.
  await user.click('nav >> text=Two-factor sign-in')
  await user.locator('[data-testid=tfa-status]').waitFor()
  check((await text(user, '[data-testid=tfa-status]')).includes('is off'), 'the 2FA page says it is off')
  await user.click('[data-testid=tfa-start]')
  const secret = (await user.locator('[data-testid=tfa-secret]').textContent()).trim()
  check(/^[A-Z2-7]{32}$/.test(secret) && (await text(user, '[data-testid=tfa-uri]')).startsWith('otpauth://totp/'),
    'enrolment shows the secret and the otpauth address as text')
  // The QR code, drawn by the console itself, decodes (zbarimg) to the same address.
  const qrFile = join(mkdtempSync(join(tmpdir(), 'fluxcode-qr-')), 'qr.png')
  await user.locator('[data-testid=tfa-qr]').screenshot({ path: qrFile })
  const decoded = execFileSync(process.env.ZBARIMG, ['-q', '--raw', qrFile], { encoding: 'utf8' }).trim()
  check(decoded === (await text(user, '[data-testid=tfa-uri]')), 'the QR code decodes to the otpauth address: ' + decoded)
  await user.fill('#tfa-code', '12345')
  await user.click('form button[type=submit]')
  await user.locator('#tfa-code-error').waitFor()
  check(true, 'a wrong confirmation code is refused at the field: ' + (await text(user, '#tfa-code-error')))
  // The previous step's code (the sign-in below uses the current one: a code is accepted
  // once). Too close to a step's end, the server's clock may cross it before the code
  // arrives and find it two steps old: wait for the next step then.
  if (Date.now() % 30000 > 25000) await new Promise(r => setTimeout(r, 30500 - (Date.now() % 30000)))
  const step = Math.floor(Date.now() / 30000)
  await user.fill('#tfa-code', totp(secret, step - 1))
  await user.click('form button[type=submit]')
  await user.locator('[data-testid=recovery-codes]').waitFor()
  check((await user.locator('[data-testid=recovery-codes] li').count()) === 10, 'confirming shows ten recovery codes once')
  await user.locator('[data-testid=tfa-status]', { hasText: 'is on' }).waitFor()
  check(true, 'and two-factor sign-in is on')
  const enrol = { secret }
  const tf = await newPage('en-US')
  await signIn(tf, USER_EMAIL, USER_PASSWORD)
  await tf.locator('#code').waitFor()
  check((await text(tf, '.notice')).includes('authenticator'), 'a two-factor account is asked for its code after the password')
  await tf.fill('#code', '000000' === totp(enrol.secret, step) ? '111111' : '000000')
  await tf.click('form button[type=submit]')
  await tf.locator('.form-error').waitFor()
  check(true, 'a wrong code is refused: ' + (await text(tf, '.form-error')))
  await tf.fill('#code', totp(enrol.secret, Math.floor(Date.now() / 30000)))
  await tf.click('form button[type=submit]')
  await tf.waitForURL(/\/dashboard$/)
  check((await text(tf, '[data-testid=balance]')).startsWith('$'), 'the right code signs the user in')

  // --- Revoking the admin API key stops it at once.
  await admin.goto(BASE + '/admin/admin-keys')
  await admin.selectOption('[data-testid=lang]', 'en')
  await admin.locator('[data-testid=admin-keys-table] tr', { hasText: 'ci-script' }).locator('button', { hasText: 'Revoke' }).click()
  await admin.click('[data-testid=confirm-yes]')
  await admin.locator('[data-testid=admin-keys-table] tr', { hasText: 'ci-script' }).locator('td', { hasText: 'revoked' }).waitFor()
  const refusedKey = await fetch(BASE + '/api/v1/admin/admin-keys', { headers: { authorization: 'Bearer ' + adminKey } })
  check(refusedKey.status === 401, 'a revoked admin API key is refused: ' + refusedKey.status)

  check(violations.length === 0, 'no CSP violation or page error: ' + violations.join(' | '))
} finally {
  await browser.close()
}
