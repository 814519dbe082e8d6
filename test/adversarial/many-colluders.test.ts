/** Many-account colluders (scenarios/collusion.ts): 4 accounts of one party among 3 honest providers, with maxError, over SQLite. */
import { collusionScenario } from './scenarios/collusion.js';

collusionScenario('sqlite', 4, { withoutMaxError: false });
