/** Collusion (scenarios/collusion.ts): 2 colluding accounts among 3 honest providers, 2-of-2 jobs, over PostgreSQL. */
import { collusionScenario } from './scenarios/collusion.js';

collusionScenario('postgres', 2, { withoutMaxError: true });
