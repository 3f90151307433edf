import { createI18n } from 'vue-i18n'

const en = {
  app: { signOut: 'Sign out', language: 'Language', menu: 'Menu', loading: 'Working…', user: 'My account', admin: 'Administration' },
  nav: {
    dashboard: 'Dashboard', keys: 'API keys', usage: 'Usage', useWith: 'Use it with',
    adminDashboard: 'Overview', users: 'Users', groups: 'Groups', accounts: 'Accounts', proxies: 'Proxies',
    rules: 'Error rules', adminUsage: 'Usage log', settings: 'Settings', twoFactor: 'Two-factor sign-in', adminKeys: 'All API keys',
    redeem: 'Redeem codes', adminApiKeys: 'Admin API keys', prices: 'Model prices',
  },
  common: {
    save: 'Save', create: 'Create', cancel: 'Cancel', delete: 'Delete', enable: 'Enable', disable: 'Disable',
    edit: 'Edit', actions: 'Actions', name: 'Name', status: 'Status', active: 'active', disabled: 'disabled',
    created: 'Created', prev: 'Previous', next: 'Next', pageOf: 'Page {page} of {pages} ({total} in all)',
    none: 'Nothing here yet.', confirmDelete: 'Delete “{name}”? This cannot be undone.', copy: 'Copy',
    copied: 'Copied', filter: 'Filter', reset: 'Reset', saved: 'Saved.', id: 'ID', platform: 'Platform',
    concurrency: 'Concurrency', concurrencyHint: '0 means no limit', priority: 'Priority', yes: 'yes', no: 'no',
    email: 'Email', password: 'Password', balance: 'Balance', expires: 'Expires', never: 'never', group: 'Group',
    confirmTitle: 'Are you sure?', confirm: 'Yes, go ahead', search: 'Search', all: 'all', error: 'error', used: 'used', expired: 'expired',
  },
  login: {
    title: 'Sign in', register: 'Create an account', submit: 'Sign in', submitRegister: 'Register',
    toRegister: 'No account? Register', toLogin: 'Have an account? Sign in',
    twoFactor: 'Enter the code from your authenticator app.', code: 'Six-digit code', recoveryCode: 'Recovery code',
    useRecovery: 'Use a recovery code instead',
  },
  tfa: {
    title: 'Two-factor sign-in', required: 'Administrators must use two-factor sign-in here. Enrol an authenticator app to continue.',
    on: 'Two-factor sign-in is on ({n} recovery codes left).', off: 'Two-factor sign-in is off.',
    intro: 'After your password, sign-in will also ask for a six-digit code from an authenticator app on your phone.',
    start: 'Set up an authenticator app', step1: '1. Add this account to your authenticator app',
    secretLabel: 'Type this key into the app (time-based):', secretLabelOr: 'Scan the code, or type this key into the app (time-based):', qr: 'QR code of the otpauth address', uriLabel: 'or paste this address into an app that accepts one:',
    step2: '2. Enter the code the app shows', confirm: 'Turn on two-factor sign-in',
    codesOnce: 'Keep these recovery codes somewhere safe: each signs you in once without the app. They are shown only now.',
    continue: 'Continue', current: 'Current code or recovery code', currentHint: 'Needed for the actions below.',
    newCodes: 'New recovery codes', newDevice: 'Move to a new device', disable: 'Turn off two-factor sign-in',
  },
  password: {
    title: 'Change your password', firstRun: 'This administrator password was generated at the first start. Choose your own before you continue.',
    old: 'Current password', new: 'New password', repeat: 'Repeat the new password', mismatch: 'The two new passwords differ.',
    submit: 'Change password', done: 'Password changed.',
  },
  dash: {
    title: 'Dashboard', balance: 'Balance', today: 'Today', requests: 'Requests', tokens: 'Tokens', cost: 'Cost',
    charged: 'Charged', chart: 'Requests per day (last 14 days)', chartCost: 'Cost per day (last 14 days)',
    subs: 'Subscriptions', daily: 'Day', weekly: 'Week', monthly: 'Month', used: 'used', left: 'left', of: 'of',
    noSubs: 'No subscriptions.', errorRate: 'Partial answers',
  },
  keys: {
    title: 'API keys', new: 'New key', prefix: 'Key', shownOnce: 'Copy the key now: it is shown only once.',
    edit: 'Edit key “{name}”', adminLimits: 'Status, concurrency and expiry set here are limits the owner cannot lift.',
    lastUsed: 'Last used', expiresAt: 'Expires at (optional)', noGroups: 'No group is open to you yet; ask an administrator.',
    models: 'Allowed models (one a line; “claude-*” for a prefix; empty: any)', modelsHint: 'Requests for other models are refused.',
    ips: 'Allowed client addresses (IPs or CIDRs, one a line; empty: any)', ipsHint: 'Behind a proxy the address is read as TRUSTED_PROXIES allows.',
  },
  usage: {
    title: 'Usage', model: 'Model', from: 'From', to: 'To', key: 'Key ID', user: 'User ID', account: 'Account ID',
    group: 'Group ID', time: 'Time', input: 'Input', output: 'Output', cache: 'Cache read', duration: 'Duration',
    export: 'Export CSV', exporting: 'Exporting…',
  },
  useWith: {
    title: 'Use it with', key: 'Key', pick: 'Choose one of your keys', noKeys: 'Create a key first.',
    note: 'The full key was shown once when you created it; put it where {placeholder} stands.',
    platformNote: 'This key\'s group serves {platform}; these clients can use it:',
  },
  claude: {
    title: 'New account (subscription sign-in)', intro: 'Pick the platform, start, open the address and sign in with the subscription account (Claude, ChatGPT or Google); the page then shows a code (or lands on an address): paste it here and finish.',
    anthropic: 'Claude (claude.ai)', openai: 'ChatGPT / Codex', gemini: 'Gemini CLI (Google)', accountId: 'Account id: {id}.', project: 'Code Assist project: {id}.',
    kind: 'Login kind', oauth: 'OAuth (renewed automatically)', setupToken: 'Setup token (inference only, one year)',
    start: 'Start sign-in', open: 'Open this address and sign in (valid for {min} min):', openLink: 'Open sign-in page',
    code: 'Code from the sign-in page', codeHint: 'The callback address, or “code#state”', finish: 'Finish and create the account',
    created: 'Account “{name}” created: {email}, plan {plan}.', expires: 'Access token expires {t}.',
    checkOk: 'First request upstream answered {status}.', checkFailed: 'First request upstream failed ({status}): {error}',
    windows: 'Subscription windows', window: '{name}: {pct}, resets {t}', reported: 'reported {t}', refresh: 'Refresh now',
  },
  redeem: {
    new: 'New redeem codes', kind: 'Kind', balance: 'Balance', concurrency: 'Concurrency raise', subscription: 'Subscription',
    count: 'How many', amount: 'Amount (USD)', raise: 'Concurrency to add', days: 'Days', note: 'Note (optional)',
    worth: 'Worth', addBalance: '+{amount} balance', addConc: '+{n} concurrency', addSub: '{group}, {days} days',
    shownOnce: 'Copy the codes now: they are shown only once ({n} codes).', copyAll: 'Copy all', download: 'Save as a file',
    export: 'Export CSV', used: 'used', usedBy: 'by {user}, {t}', disable: 'Disable', prefix: 'Code',
    confirmDisable: 'Disable code “{prefix}…”? It can no longer be redeemed.',
    mine: 'Redeem a code', code: 'Code', submit: 'Redeem', noSubGroups: 'No group bills by subscription yet.',
    gotBalance: 'Redeemed: {amount} added to your balance.', gotConc: 'Redeemed: your concurrency went up by {n}.',
    gotSub: 'Redeemed: your subscription to {group} now runs until {t}.',
  },
  akeys: {
    new: 'New admin API key', intro: 'An admin API key lets a script use the admin API (header x-api-key or Bearer) as you, without a password. It stops working when revoked or when you are no longer an active administrator.',
    shownOnce: 'Copy the key now: it is shown only once.', createdBy: 'Created by', revoke: 'Revoke', revoked: 'revoked',
    confirmRevoke: 'Revoke the admin API key “{name}”? Scripts using it stop working at once.',
  },
  prices: {
    intro: 'Prices here override the built-in table and the price file, on every node. A model without a price is refused unless unpriced models are allowed.',
    allowUnpriced: 'Serve models without a price at zero cost', model: 'Model', input: 'Input, $ per million tokens', output: 'Output, $ per million tokens',
    cacheRead: 'Cache read, $ per million (optional)', cacheWrite: 'Cache write, $ per million (optional)', add: 'Add a model', remove: 'Remove',
    kept: 'Other LiteLLM fields of an entry are kept as they are.', json: 'As JSON (USD per token)',
  },
  tools: {
    scheduling: 'Scheduling', notSchedulable: 'not schedulable', todayTotal: 'Today / in all', total: 'In all',
    figures: '{requests} req · {tokens} tok · {cost} · {errors} err', test: 'Test',
    testOk: 'OK {status} in {ms} ms ({model})', testFailed: 'Failed ({status}) after {ms} ms: {error}',
    picked: '{n} accounts ticked', pickAll: 'Tick every account on this page', pick: 'Tick {name}',
    moveTo: 'Move into the groups', move: 'Move',
  },
  access: {
    exclusive: 'Exclusive (only users allowed on it)', exclusiveShort: 'exclusive', allowed: 'Exclusive groups this user may use',
    allowedHint: 'Groups that are not exclusive are open to everyone.', noExclusive: 'No group is exclusive.',
    rpm: 'Requests per minute (0: none)', tpm: 'Tokens per minute (0: none)',
  },
  admin: {
    title: 'Overview', users: 'Users', groups: 'Groups', accounts: 'Accounts', inFlight: 'In flight', limit: 'Limit',
    marks: 'Health marks', rateLimited: 'rate limited until {t}', overloaded: 'overloaded until {t}',
    tempUnsched: 'paused until {t}', healthy: 'healthy', adjust: 'Adjust balance', amount: 'Amount (USD, negative to deduct)',
    note: 'Note', role: 'Role', newUser: 'New user', newGroup: 'New group', billing: 'Billing', multiplier: 'Rate multiplier',
    dailyLimit: 'Daily limit (USD)', weeklyLimit: 'Weekly limit (USD)', monthlyLimit: 'Monthly limit (USD)',
    newAccount: 'New account (API key)', apiKey: 'Upstream API key', baseUrl: 'Base URL (empty: the platform default)',
    mapping: 'Model mapping (one “from=to” per line)', proxy: 'Proxy', noProxy: 'none', groupsOf: 'Groups',
    recover: 'Clear marks', subs: 'Subscriptions', assign: 'Assign subscription', expiresAt: 'Expires at',
    newProxy: 'New proxy', protocol: 'Protocol', host: 'Host', port: 'Port', username: 'Username',
    newRule: 'New error rule', statusCode: 'Upstream status', keyword: 'Keyword in the error', minutes: 'Pause (minutes)',
    enabled: 'Enabled', siteName: 'Site name', registration: 'Allow public registration', defConc: 'Default concurrency of new users',
    require2fa: 'Administrators must use two-factor sign-in',
    defBalance: 'Default balance of new users (USD)', schedulable: 'Schedulable', errorRate: 'Error rate',
    editGroup: 'Edit group “{name}”',
    editAccount: 'Edit account “{name}”', keepKey: 'Leave empty to keep the stored credentials ({fields}); they are needed again when the base URL or proxy changes.',
    organization: 'OpenAI organization (optional)', project: 'OpenAI project (optional)', priorityHint: '0 is tried first',
    errorChart: 'Failed requests per day, % (last 14 days)', failedOf: '{errors} of {requests} requests failed',
  },
}

type Messages = typeof en

const zh: Messages = {
  app: { signOut: '退出登录', language: '语言', menu: '菜单', loading: '处理中…', user: '我的账户', admin: '管理' },
  nav: {
    dashboard: '仪表盘', keys: 'API 密钥', usage: '用量', useWith: '接入方式',
    adminDashboard: '总览', users: '用户', groups: '分组', accounts: '上游账号', proxies: '代理',
    rules: '错误规则', adminUsage: '用量日志', settings: '设置', twoFactor: '两步验证', adminKeys: '全部 API 密钥',
    redeem: '兑换码', adminApiKeys: '管理 API 密钥', prices: '模型价格',
  },
  common: {
    save: '保存', create: '创建', cancel: '取消', delete: '删除', enable: '启用', disable: '停用',
    edit: '编辑', actions: '操作', name: '名称', status: '状态', active: '启用中', disabled: '已停用',
    created: '创建时间', prev: '上一页', next: '下一页', pageOf: '第 {page} / {pages} 页（共 {total} 条）',
    none: '暂无数据。', confirmDelete: '确定删除“{name}”？此操作无法撤销。', copy: '复制',
    copied: '已复制', filter: '筛选', reset: '重置', saved: '已保存。', id: 'ID', platform: '平台',
    concurrency: '并发数', concurrencyHint: '0 表示不限', priority: '优先级', yes: '是', no: '否',
    email: '邮箱', password: '密码', balance: '余额', expires: '到期', never: '永不', group: '分组',
    confirmTitle: '确认操作', confirm: '确定', search: '搜索', all: '全部', error: '出错', used: '已使用', expired: '已过期',
  },
  login: {
    title: '登录', register: '注册账户', submit: '登录', submitRegister: '注册',
    toRegister: '没有账户？注册', toLogin: '已有账户？登录',
    twoFactor: '请输入身份验证器应用中的验证码。', code: '六位验证码', recoveryCode: '恢复码',
    useRecovery: '改用恢复码',
  },
  tfa: {
    title: '两步验证', required: '管理员必须使用两步验证。请先绑定身份验证器应用再继续。',
    on: '两步验证已开启（剩余 {n} 个恢复码）。', off: '两步验证未开启。',
    intro: '开启后，登录时除密码外还需输入手机上身份验证器应用显示的六位验证码。',
    start: '绑定身份验证器应用', step1: '1. 在身份验证器应用中添加此账户',
    secretLabel: '在应用中输入此密钥（基于时间）：', secretLabelOr: '扫描二维码，或在应用中输入此密钥（基于时间）：', qr: 'otpauth 地址的二维码', uriLabel: '或将此地址粘贴到支持的应用中：',
    step2: '2. 输入应用显示的验证码', confirm: '开启两步验证',
    codesOnce: '请妥善保存这些恢复码：每个可在没有应用时登录一次。它们只显示这一次。',
    continue: '继续', current: '当前验证码或恢复码', currentHint: '以下操作需要。',
    newCodes: '重新生成恢复码', newDevice: '更换设备', disable: '关闭两步验证',
  },
  password: {
    title: '修改密码', firstRun: '此管理员密码是首次启动时自动生成的，请先设置您自己的密码。',
    old: '当前密码', new: '新密码', repeat: '再次输入新密码', mismatch: '两次输入的新密码不一致。',
    submit: '修改密码', done: '密码已修改。',
  },
  dash: {
    title: '仪表盘', balance: '余额', today: '今日', requests: '请求数', tokens: 'Token 数', cost: '费用',
    charged: '扣费', chart: '每日请求数（最近 14 天）', chartCost: '每日费用（最近 14 天）',
    subs: '订阅', daily: '日', weekly: '周', monthly: '月', used: '已用', left: '剩余', of: '共',
    noSubs: '没有订阅。', errorRate: '不完整应答',
  },
  keys: {
    title: 'API 密钥', new: '新建密钥', prefix: '密钥', shownOnce: '请立即复制密钥：它只显示这一次。',
    edit: '编辑密钥“{name}”', adminLimits: '此处设置的状态、并发数和到期时间是密钥所有者无法解除的限制。',
    lastUsed: '最近使用', expiresAt: '到期时间（可选）', noGroups: '暂无可用分组，请联系管理员。',
    models: '允许的模型（每行一个；“claude-*”表示前缀；留空为不限）', modelsHint: '请求其他模型将被拒绝。',
    ips: '允许的客户端地址（IP 或 CIDR，每行一个；留空为不限）', ipsHint: '位于代理之后时，按 TRUSTED_PROXIES 的设置读取地址。',
  },
  usage: {
    title: '用量', model: '模型', from: '开始', to: '结束', key: '密钥 ID', user: '用户 ID', account: '账号 ID',
    group: '分组 ID', time: '时间', input: '输入', output: '输出', cache: '缓存读取', duration: '耗时',
    export: '导出 CSV', exporting: '导出中…',
  },
  useWith: {
    title: '接入方式', key: '密钥', pick: '选择一个密钥', noKeys: '请先创建密钥。',
    note: '完整密钥只在创建时显示一次；请把它填到 {placeholder} 处。',
    platformNote: '此密钥的分组提供 {platform}，以下客户端可以使用：',
  },
  claude: {
    title: '新建账号（订阅登录）', intro: '选择平台并点击开始，打开地址并用订阅账号（Claude、ChatGPT 或 Google）登录；页面随后显示一个代码（或跳转到一个地址）：粘贴到这里并完成。',
    anthropic: 'Claude（claude.ai）', openai: 'ChatGPT / Codex', gemini: 'Gemini CLI（Google）', accountId: '账号 ID：{id}。', project: 'Code Assist 项目：{id}。',
    kind: '登录类型', oauth: 'OAuth（自动续期）', setupToken: 'Setup token（仅推理，一年有效）',
    start: '开始登录', open: '打开此地址并登录（{min} 分钟内有效）：', openLink: '打开登录页',
    code: '登录页给出的代码', codeHint: '回调地址，或“code#state”', finish: '完成并创建账号',
    created: '已创建账号“{name}”：{email}，套餐 {plan}。', expires: '访问令牌到期时间 {t}。',
    checkOk: '首个上游请求返回 {status}。', checkFailed: '首个上游请求失败（{status}）：{error}',
    windows: '订阅用量窗口', window: '{name}：{pct}，{t} 重置', reported: '更新于 {t}', refresh: '立即续期',
  },
  redeem: {
    new: '新建兑换码', kind: '类型', balance: '余额', concurrency: '提升并发', subscription: '订阅',
    count: '数量', amount: '金额（美元）', raise: '增加的并发数', days: '天数', note: '备注（可选）',
    worth: '面值', addBalance: '余额 +{amount}', addConc: '并发 +{n}', addSub: '{group}，{days} 天',
    shownOnce: '请立即复制这些兑换码：它们只显示这一次（共 {n} 个）。', copyAll: '全部复制', download: '保存为文件',
    export: '导出 CSV', used: '已使用', usedBy: '{user}，{t}', disable: '停用', prefix: '兑换码',
    confirmDisable: '停用兑换码“{prefix}…”？停用后无法再兑换。',
    mine: '兑换', code: '兑换码', submit: '兑换', noSubGroups: '还没有按订阅计费的分组。',
    gotBalance: '兑换成功：余额增加 {amount}。', gotConc: '兑换成功：并发数增加 {n}。',
    gotSub: '兑换成功：{group} 的订阅有效期至 {t}。',
  },
  akeys: {
    new: '新建管理 API 密钥', intro: '管理 API 密钥让脚本以您的身份调用管理 API（请求头 x-api-key 或 Bearer），无需密码。吊销后、或您不再是启用中的管理员时立即失效。',
    shownOnce: '请立即复制密钥：它只显示这一次。', createdBy: '创建者', revoke: '吊销', revoked: '已吊销',
    confirmRevoke: '吊销管理 API 密钥“{name}”？使用它的脚本将立即失效。',
  },
  prices: {
    intro: '此处的价格覆盖内置价格表和价格文件，对所有节点生效。没有价格的模型会被拒绝，除非允许无价格模型。',
    allowUnpriced: '无价格的模型按零费用提供', model: '模型', input: '输入（美元 / 百万 Token）', output: '输出（美元 / 百万 Token）',
    cacheRead: '缓存读取（美元 / 百万，可选）', cacheWrite: '缓存写入（美元 / 百万，可选）', add: '添加模型', remove: '移除',
    kept: '条目中的其他 LiteLLM 字段保持不变。', json: 'JSON 形式（美元 / Token）',
  },
  tools: {
    scheduling: '调度', notSchedulable: '不可调度', todayTotal: '今日 / 累计', total: '累计',
    figures: '{requests} 次 · {tokens} Token · {cost} · {errors} 错误', test: '测试',
    testOk: '成功 {status}，耗时 {ms} ms（{model}）', testFailed: '失败（{status}），耗时 {ms} ms：{error}',
    picked: '已勾选 {n} 个账号', pickAll: '勾选本页全部账号', pick: '勾选 {name}',
    moveTo: '移入分组', move: '移动',
  },
  access: {
    exclusive: '专属（仅允许的用户可用）', exclusiveShort: '专属', allowed: '此用户可用的专属分组',
    allowedHint: '非专属分组对所有人开放。', noExclusive: '没有专属分组。',
    rpm: '每分钟请求数（0 为不限）', tpm: '每分钟 Token 数（0 为不限）',
  },
  admin: {
    title: '总览', users: '用户', groups: '分组', accounts: '上游账号', inFlight: '进行中', limit: '上限',
    marks: '健康标记', rateLimited: '限流至 {t}', overloaded: '过载至 {t}',
    tempUnsched: '暂停至 {t}', healthy: '正常', adjust: '调整余额', amount: '金额（美元，负数为扣减）',
    note: '备注', role: '角色', newUser: '新建用户', newGroup: '新建分组', billing: '计费方式', multiplier: '费率倍数',
    dailyLimit: '日限额（美元）', weeklyLimit: '周限额（美元）', monthlyLimit: '月限额（美元）',
    newAccount: '新建账号（API 密钥）', apiKey: '上游 API 密钥', baseUrl: 'Base URL（留空为平台默认）',
    mapping: '模型映射（每行一个“源=目标”）', proxy: '代理', noProxy: '无', groupsOf: '所属分组',
    recover: '清除标记', subs: '订阅', assign: '分配订阅', expiresAt: '到期时间',
    newProxy: '新建代理', protocol: '协议', host: '主机', port: '端口', username: '用户名',
    newRule: '新建错误规则', statusCode: '上游状态码', keyword: '错误中的关键词', minutes: '暂停（分钟）',
    enabled: '启用', siteName: '站点名称', registration: '允许公开注册', defConc: '新用户默认并发数',
    require2fa: '管理员必须使用两步验证',
    defBalance: '新用户默认余额（美元）', schedulable: '可调度', errorRate: '错误率',
    editGroup: '编辑分组“{name}”',
    editAccount: '编辑账号“{name}”', keepKey: '留空则保留已存储的凭据（{fields}）；更改 Base URL 或代理时需重新填写。',
    organization: 'OpenAI 组织（可选）', project: 'OpenAI 项目（可选）', priorityHint: '0 最先使用',
    errorChart: '每日失败请求占比 %（最近 14 天）', failedOf: '{requests} 个请求中 {errors} 个失败',
  },
}

export function preferredLocale(): 'en' | 'zh-CN' {
  const saved = localStorage.getItem('fluxcode.lang')
  if (saved === 'en' || saved === 'zh-CN') return saved
  for (const l of navigator.languages ?? [navigator.language]) {
    if (l.toLowerCase().startsWith('zh')) return 'zh-CN'
    if (l.toLowerCase().startsWith('en')) return 'en'
  }
  return 'en'
}

export const i18n = createI18n({
  legacy: false,
  locale: preferredLocale(),
  fallbackLocale: 'en',
  messages: { en, 'zh-CN': zh },
})

export function setLocale(l: 'en' | 'zh-CN') {
  i18n.global.locale.value = l
  localStorage.setItem('fluxcode.lang', l)
  document.documentElement.lang = l
}
