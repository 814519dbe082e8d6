/** Submit: the quote and budget check gate submission; an API validation error shows next to the field it names. */
import { cleanup, fireEvent, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { vi } from 'vitest';
import { Submit } from '../src/views/Submit.js';
import { fakeFetch, json, quote, renderSignedIn } from './fake-api.js';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe('Submit', () => {
  it('shows the API error under the field its path names', async () => {
    const calls = fakeFetch((m, p) => {
      if (p === '/v1/quote') return json(200, quote(true));
      if (m === 'POST' && p === '/v1/jobs') {
        return json(400, {
          error: {
            code: 'validation_failed',
            message: 'invalid job spec: resources.memoryMb: too much',
            details: [{ path: 'resources.memoryMb', message: 'no provider lends that much memory' }],
          },
        });
      }
      return undefined;
    });
    renderSignedIn(<Submit />);
    const button = await screen.findByRole('button', { name: 'Submit job' });
    await waitFor(() => expect((button as HTMLButtonElement).disabled).toBe(false));
    expect(screen.getByText('covered')).toBeTruthy();
    fireEvent.click(button);
    const memory = screen.getByLabelText('Memory (MiB)');
    await waitFor(() => expect(memory.getAttribute('aria-invalid')).toBe('true'));
    const described = document.getElementById(memory.getAttribute('aria-describedby')!.split(' ').pop()!);
    expect(described?.textContent).toBe('no provider lends that much memory');
    expect(calls.filter((c) => c.method === 'POST' && c.path === '/v1/jobs')).toHaveLength(1);
  });

  it('refuses to submit what the balance cannot cover, saying by how much', async () => {
    fakeFetch((_m, p) => (p === '/v1/quote' ? json(200, quote(false)) : undefined));
    renderSignedIn(<Submit />);
    const button = await screen.findByRole('button', { name: 'Not enough credits' });
    expect((button as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByText(/short by 2 cr/)).toBeTruthy();
  });

  it('checks fields with the protocol schema before quoting', async () => {
    const calls = fakeFetch((_m, p) => (p === '/v1/quote' ? json(200, quote(true)) : undefined));
    renderSignedIn(<Submit />);
    await screen.findByText('covered');
    fireEvent.change(screen.getByLabelText('Quorum'), { target: { value: '5' } });
    await waitFor(() => expect(screen.getByLabelText('Quorum').getAttribute('aria-invalid')).toBe('true'));
    expect(screen.getByText('quorum must be at most replicas')).toBeTruthy();
    const quotes = calls.filter((c) => c.path === '/v1/quote').length;
    await new Promise((r) => setTimeout(r, 500));
    expect(calls.filter((c) => c.path === '/v1/quote').length).toBe(quotes);
    expect((screen.getByRole('button', { name: /submit job|not enough/i }) as HTMLButtonElement).disabled).toBe(true);
  });
});
