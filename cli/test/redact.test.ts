import { describe, expect, it } from 'vitest';
import { redactPlan, REDACTED } from '../src/redact';
import { renderPlan } from '../src/plan-render';
import { webstackPlan } from '../../plan/test/fixtures';

describe('redaction', () => {
  it('hides sensitive parameter values wherever they appear, and only those', () => {
    const plan = webstackPlan();
    const db = plan.instances[1];
    db.program.env.DB_PASSWORD = 'hunter2';
    db.program.files.push({ path: '/etc/db.conf', content: 'password=hunter2\n', mode: '0600' });
    const shown = redactPlan(plan);
    const text = JSON.stringify(shown) + renderPlan(shown);
    expect(text).not.toContain('hunter2');
    expect(shown.instances[1].params).toEqual({ password: REDACTED, size: 10 });
    expect(shown.instances[1].program.env.DB_PASSWORD).toBe(REDACTED);
    // The plan itself is untouched: the backend needs the values.
    expect(plan.instances[1].params.password).toBe('hunter2');
    expect(renderPlan(shown)).toContain('params: password="(sensitive)", size=10');
  });
});
