import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// The build goes straight into the Go package that embeds it. Names carry content hashes and
// nothing depends on the time or the machine, so the same sources give the same files (CI
// rebuilds and checks that the committed copy is current).
export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: {
    outDir: '../internal/webui/dist',
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: false,
    assetsInlineLimit: 0,
  },
})
