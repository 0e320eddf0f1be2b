// Vite configuration for the disgrafs page. The output (index.html + content-hashed files under
// assets/) is embedded into the binary by crates/web/build.rs; during development `npm run dev`
// proxies /api to a running server (DISGRAFS_API, default http://127.0.0.1:7878).
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: { "/api": process.env.DISGRAFS_API ?? "http://127.0.0.1:7878" },
  },
});
