import { createRouter, createWebHistory } from 'vue-router'
import { loadMe, loadPublic, state } from './api'

const pages = {
  login: () => import('./pages/Login.vue'),
  password: () => import('./pages/Password.vue'),
  dashboard: () => import('./pages/Dashboard.vue'),
  keys: () => import('./pages/Keys.vue'),
  usage: () => import('./pages/Usage.vue'),
  useWith: () => import('./pages/UseWith.vue'),
  adminDashboard: () => import('./pages/AdminDashboard.vue'),
  users: () => import('./pages/AdminUsers.vue'),
  groups: () => import('./pages/AdminGroups.vue'),
  accounts: () => import('./pages/AdminAccounts.vue'),
  proxies: () => import('./pages/AdminProxies.vue'),
  rules: () => import('./pages/AdminRules.vue'),
  settings: () => import('./pages/AdminSettings.vue'),
  redeem: () => import('./pages/AdminRedeem.vue'),
  adminApiKeys: () => import('./pages/AdminApiKeys.vue'),
  prices: () => import('./pages/AdminPrices.vue'),
  twoFactor: () => import('./pages/TwoFactor.vue'),
}

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', redirect: '/dashboard' },
    { path: '/login', name: 'login', component: pages.login, meta: { public: true } },
    { path: '/register', name: 'register', component: pages.login, meta: { public: true } },
    { path: '/password', name: 'password', component: pages.password },
    { path: '/dashboard', name: 'dashboard', component: pages.dashboard },
    { path: '/keys', name: 'keys', component: pages.keys },
    { path: '/usage', name: 'usage', component: pages.usage },
    { path: '/use-with', name: 'useWith', component: pages.useWith },
    { path: '/2fa', name: 'twoFactor', component: pages.twoFactor },
    { path: '/admin', name: 'adminDashboard', component: pages.adminDashboard, meta: { admin: true } },
    { path: '/admin/users', name: 'users', component: pages.users, meta: { admin: true } },
    { path: '/admin/groups', name: 'groups', component: pages.groups, meta: { admin: true } },
    { path: '/admin/accounts', name: 'accounts', component: pages.accounts, meta: { admin: true } },
    { path: '/admin/keys', name: 'adminKeys', component: pages.keys, meta: { admin: true } },
    { path: '/admin/proxies', name: 'proxies', component: pages.proxies, meta: { admin: true } },
    { path: '/admin/rules', name: 'rules', component: pages.rules, meta: { admin: true } },
    { path: '/admin/usage', name: 'adminUsage', component: pages.usage, meta: { admin: true } },
    { path: '/admin/settings', name: 'settings', component: pages.settings, meta: { admin: true } },
    { path: '/admin/redeem-codes', name: 'redeem', component: pages.redeem, meta: { admin: true } },
    { path: '/admin/admin-keys', name: 'adminApiKeys', component: pages.adminApiKeys, meta: { admin: true } },
    { path: '/admin/prices', name: 'prices', component: pages.prices, meta: { admin: true } },
    { path: '/:rest(.*)*', redirect: '/dashboard' },
  ],
})

let started = false
router.beforeEach(async (to) => {
  if (!started) {
    started = true
    await Promise.all([loadPublic(), loadMe()])
  }
  if (to.meta.public) {
    return state.me ? { path: '/dashboard' } : true
  }
  if (state.enrolOnly) return to.name === 'twoFactor' ? true : { name: 'twoFactor' }
  if (!state.me) return { name: 'login', query: to.fullPath !== '/dashboard' ? { next: to.fullPath } : {} }
  if (state.me.must_change_password && to.name !== 'password') return { name: 'password' }
  if (state.me.must_enrol_2fa && to.name !== 'twoFactor') return { name: 'twoFactor' }
  if (to.meta.admin && state.me.role !== 'admin') return { name: 'dashboard' }
  return true
})
