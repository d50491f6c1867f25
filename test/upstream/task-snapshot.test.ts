import { describe, expect, it } from 'vitest';
import { UpstreamInvalidError } from '../../src/upstream/errors.ts';
import { normaliseCancel, normaliseTask, parseProgress, parseTime } from '../../src/upstream/task-snapshot.ts';

const base = { task_id: 'task-1', model: 'gpt-image-2', action: 'generate', created_at: 1_720_000_000 };

describe('normaliseTask', () => {
  it('reads integer progress (older form) and percentage strings (newer form)', () => {
    expect(normaliseTask({ ...base, status: 'processing', progress: 45 }).progress).toBe(45);
    expect(normaliseTask({ ...base, status: 'processing', progress: '45%' }).progress).toBe(45);
    expect(normaliseTask({ ...base, status: 'processing', progress: ' 7 % ' }).progress).toBe(7);
    expect(normaliseTask({ ...base, status: 'processing', progress: '12.6%' }).progress).toBe(13);
  });

  it('gives progress 0 for a queued task whatever the wire says ("" right after queueing, garbage, none)', () => {
    expect(normaliseTask({ ...base, status: 'queued', progress: '' }).progress).toBe(0);
    expect(normaliseTask({ ...base, status: 'queued', progress: 'soon' }).progress).toBe(0);
    expect(normaliseTask({ ...base, status: 'queued' }).progress).toBe(0);
  });

  it('gives null progress for a processing task whose progress is empty or garbage', () => {
    expect(normaliseTask({ ...base, status: 'processing', progress: '' }).progress).toBeNull();
    expect(normaliseTask({ ...base, status: 'processing', progress: 'soon' }).progress).toBeNull();
  });

  it('reads pre_consumed_cost from any state and refunded_quota on a cancelled task; null when absent or malformed', () => {
    expect(normaliseTask({ ...base, status: 'queued', pre_consumed_cost: 5500 }).preConsumedCost).toBe(5500);
    expect(normaliseTask({ ...base, status: 'queued', pre_consumed_cost: '300' }).preConsumedCost).toBe(300);
    expect(normaliseTask({ ...base, status: 'queued' }).preConsumedCost).toBeNull();
    expect(normaliseTask({ ...base, status: 'queued', pre_consumed_cost: 'lots' }).preConsumedCost).toBeNull();
    expect(normaliseTask({ ...base, status: 'cancelled', completed_at: 1, refunded_quota: 50 }).refundedCost).toBe(50);
    expect(normaliseTask({ ...base, status: 'queued', refunded_quota: 50 }).refundedCost).toBeNull();
  });

  it('reads a cancel answer, with the asked id when the answer names none', () => {
    expect(normaliseCancel({ task_id: 'task-1', status: 'cancelled', refunded: true, refunded_quota: 50_000 }, 'task-1')).toEqual({
      id: 'task-1',
      refunded: true,
      refundedQuota: 50_000,
    });
    expect(normaliseCancel({ status: 'cancelled' }, 'task-2')).toEqual({ id: 'task-2', refunded: false, refundedQuota: null });
  });

  it('clamps progress to 0-100 and reports 100 for completed whatever the wire says', () => {
    expect(parseProgress(140)).toBe(100);
    expect(parseProgress(-3)).toBe(0);
    expect(normaliseTask({ ...base, status: 'completed', progress: '', completed_at: 1_720_000_100, cost: 1, result: {} }).progress).toBe(
      100,
    );
  });

  it('reads seconds and milliseconds, taking values above 1e12 as milliseconds', () => {
    expect(parseTime(1_720_000_000)?.toISOString()).toBe('2024-07-03T09:46:40.000Z');
    expect(parseTime(1_720_000_000_000)?.toISOString()).toBe('2024-07-03T09:46:40.000Z');
    expect(parseTime(1_720_000_000_123)?.toISOString()).toBe('2024-07-03T09:46:40.123Z');
    expect(parseTime('1720000000')?.toISOString()).toBe('2024-07-03T09:46:40.000Z');
    expect(parseTime(0)).toBeNull();
    expect(parseTime('yesterday')).toBeNull();
  });

  it('maps the five statuses case-insensitively and an unknown one to UNKNOWN, keeping the raw value', () => {
    for (const status of ['queued', 'processing', 'completed', 'failed', 'cancelled']) {
      expect(normaliseTask({ ...base, status }).status).toBe(status.toUpperCase());
    }
    expect(normaliseTask({ ...base, status: 'PROCESSING' }).status).toBe('PROCESSING');
    const unknown = normaliseTask({ ...base, status: 'paused' });
    expect(unknown.status).toBe('UNKNOWN');
    expect(unknown.upstreamStatus).toBe('paused');
    expect(normaliseTask({ ...base, status: 'unknown' }).status).toBe('UNKNOWN');
  });

  it('reads string and numeric error codes and marks the retryable ones', () => {
    const failed = (error: unknown) => normaliseTask({ ...base, status: 'failed', progress: '100%', error }).error;
    expect(failed({ message: 'no', code: 'task_failed' })).toEqual({ code: 'task_failed', message: 'no', retryable: false });
    expect(failed({ message: 'busy', code: 'upstream_unavailable' })).toEqual({
      code: 'upstream_unavailable',
      message: 'busy',
      retryable: true,
    });
    expect(failed({ message: 'busy', code: 503 })).toEqual({ code: '503', message: 'busy', retryable: false });
    expect(failed(undefined)).toEqual({ code: 'task_failed', message: 'The task failed.', retryable: false });
  });

  it('reads result files with url arrays (and a lone string url) and their expiry', () => {
    const task = normaliseTask({
      ...base,
      status: 'completed',
      completed_at: 1_720_000_100_000,
      cost: 300,
      result: {
        images: [{ url: ['https://a/1.png', 'https://b/1.png'], expires_at: 1_720_604_900 }],
        videos: [{ url: 'https://a/v.mp4' }],
      },
    });
    expect(task.result).toEqual({
      images: [{ urls: ['https://a/1.png', 'https://b/1.png'], expiresAt: new Date(1_720_604_900_000) }],
      videos: [{ urls: ['https://a/v.mp4'], expiresAt: null }],
      audios: [],
    });
    expect(task.completedAt).toEqual(new Date(1_720_000_100_000));
    expect(task.cost).toBe(300);
  });

  it('keeps completedAt, cost, result and error only for the states that have them', () => {
    const processing = normaliseTask({ ...base, status: 'processing', completed_at: 1, cost: 5, result: {}, error: {} });
    expect([processing.completedAt, processing.cost, processing.result, processing.error]).toEqual([null, null, null, null]);
    const cancelled = normaliseTask({ ...base, status: 'cancelled', completed_at: 1_720_000_010, cost: 0 });
    expect(cancelled.cost).toBe(0);
    expect(cancelled.result).toBeNull();
  });

  it('ignores the urls links object and defaults a missing action to generate', () => {
    const task = normaliseTask({ task_id: 'task-2', status: 'queued', model: 'm', created_at: 5, urls: { get: 'x', cancel: 'y' } });
    expect(task.action).toBe('generate');
    expect(task).not.toHaveProperty('urls');
  });

  it('rejects bodies that are not tasks with UpstreamInvalidError', () => {
    for (const body of [
      null,
      [],
      'task',
      { status: 'queued', created_at: 5 },
      { task_id: 'x', created_at: 5 },
      { task_id: 'x', status: 'queued' },
    ]) {
      expect(() => normaliseTask(body)).toThrow(UpstreamInvalidError);
    }
  });
});
