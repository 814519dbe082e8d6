/** Self-billing, early timeouts and fake out-of-memory (scenarios/self-billing.ts) over PostgreSQL. */
import { selfBillingScenario } from './scenarios/self-billing.js';

selfBillingScenario('postgres');
