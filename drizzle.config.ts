import { defineConfig } from 'drizzle-kit';

// Only generation runs through drizzle-kit; migrations are applied by our own migrator
// (src/db/migrate.ts), which takes an advisory lock first.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './drizzle',
});
