// One in-app confirmation for destructive actions (instead of window.confirm, which cannot be
// styled, translated in its buttons, or read well by every screen reader): a page awaits
// confirmAction, and ConfirmDialog (mounted once in App.vue) asks.
import { reactive } from 'vue'

export const pending = reactive({ message: '', open: false, resolve: (_: boolean) => {} })

// confirmAction resolves true when the user confirms, false on cancel or Escape.
export function confirmAction(message: string): Promise<boolean> {
  pending.resolve(false) // a question still open is answered no
  return new Promise((resolve) => {
    Object.assign(pending, { message, open: true, resolve })
  })
}

export function answer(yes: boolean) {
  const r = pending.resolve
  Object.assign(pending, { open: false, message: '', resolve: () => {} })
  r(yes)
}
