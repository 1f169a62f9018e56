/**
 * Small steps several consistency tests share: a profile update through the API, and waiting for an
 * invalidation event to reach an instance.
 */
import { expect } from 'vitest';
import type { InvalidationEvent } from '../../src/cache/events/invalidation-events.js';
import type { TestApp } from './app.js';

const UPDATE = `mutation Update($input: UpdateProfileInput!) { updateProfile(input: $input) { version } }`;

/** Updates `userId`'s bio as that user; returns the new version. */
export async function updateBio(t: TestApp, userId: number, bio: string): Promise<number> {
  const response = await t.gql<{ updateProfile: { version: number } }>(UPDATE, {
    variables: { input: { bio } },
    token: await t.token(userId),
  });
  expect(response.body.errors).toBeUndefined();
  return response.body.data!.updateProfile.version;
}

/** Resolves with the event for `entity` `id` once `t`'s subscriber (and so its L1) has received it. */
export function eventReaching(t: TestApp, entity: string, id: number): Promise<InvalidationEvent> {
  return new Promise((resolve) => {
    const off = t.app.invalidations.onEvents(({ events }) => {
      const event = events.find((e) => e.entity === entity && e.id === id);
      if (event === undefined) return;
      off();
      resolve(event);
    });
  });
}
