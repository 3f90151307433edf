import { createApp } from 'vue'
import App from './App.vue'
import { router } from './router'
import { i18n } from './i18n'
import { state } from './api'
import './style.css'

state.onUnauthenticated = () => {
  router.push({ name: 'login', query: { next: router.currentRoute.value.fullPath } })
}
document.documentElement.lang = i18n.global.locale.value
createApp(App).use(router).use(i18n).mount('#app')
