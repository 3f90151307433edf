// A form's error state: the API names the wrong field and says why; the page shows that
// message next to the field (or above the form when no field is named).
import { reactive, ref, type Ref } from 'vue'
import { api, ApiError, type Page } from './api'
import { confirmAction } from './confirm'

export function useForm() {
  const errors = reactive<Record<string, string>>({})
  const general = ref('')
  const busy = ref(false)
  async function run(fn: () => Promise<unknown>): Promise<boolean> {
    for (const k of Object.keys(errors)) delete errors[k]
    general.value = ''
    busy.value = true
    try {
      await fn()
      return true
    } catch (e) {
      if (e instanceof ApiError && e.field) errors[e.field] = e.message
      else general.value = e instanceof Error ? e.message : String(e)
      return false
    } finally {
      busy.value = false
    }
  }
  return { errors, general, busy, run }
}

// useList is one server-paged, server-filtered list and the row actions on it: the filters'
// non-empty values go to the API as query parameters, an action's failure is shown above the
// table, and the page is reloaded after it.
export function useList<T, F extends Record<string, string> = Record<string, string>>(path: string, size = 20, initial?: F) {
  const list = ref({ items: [], total: 0, page: 1, page_size: size }) as Ref<Page<T>>
  const filters = ref({ ...(initial ?? {}) }) as Ref<F>
  const rowError = ref('')
  async function load(page = list.value.page) {
    const sep = path.includes('?') ? '&' : '?'
    const q = new URLSearchParams({ page: String(page), page_size: String(size) })
    for (const [k, v] of Object.entries(filters.value)) if (v.trim()) q.set(k, v.trim())
    list.value = await api<Page<T>>('GET', `${path}${sep}${q}`)
  }
  async function act(fn: () => Promise<unknown>) {
    rowError.value = ''
    try {
      await fn()
      await load()
    } catch (e) {
      rowError.value = e instanceof Error ? e.message : String(e)
    }
  }
  // toggle flips a record's status between active and disabled with a PATCH.
  const toggle = (url: string, status: string) => act(() => api('PATCH', url, { status: status === 'disabled' ? 'active' : 'disabled' }))
  // remove deletes a record after the user confirms.
  const remove = async (url: string, question: string) => (await confirmAction(question)) && act(() => api('DELETE', url))
  return { list, rowError, load, act, toggle, remove, filters }
}

// useUserEmails names users by e-mail on admin pages that hold only their ids (the first 200
// users; any other stays "#id").
export function useUserEmails() {
  const emails = ref<Record<number, string>>({})
  async function loadEmails() {
    const p = await api<Page<{ id: number; email: string }>>('GET', '/admin/users?page_size=200')
    emails.value = Object.fromEntries(p.items.map((u) => [u.id, u.email]))
  }
  const email = (id?: number) => (id && emails.value[id]) || '#' + id
  return { loadEmails, email }
}
