/** Self-billing, early timeouts and fake out-of-memory (scenarios/self-billing.ts) over SQLite. */
import { selfBillingScenario } from './scenarios/self-billing.js';

selfBillingScenario('sqlite');
