/** The cause chain as one line, without drizzle's "Failed query: …" wrapper (the SQL is not the news). */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  for (
    let e: unknown = error;
    e !== undefined && parts.length < 5;
    e = e instanceof Error ? e.cause : undefined
  ) {
    const message = e instanceof Error ? e.message : String(e);
    if (!message.startsWith('Failed query:')) parts.push(message);
  }
  return parts.join(': ');
}
