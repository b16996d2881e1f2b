import { exampleSuite } from './examples-suite.js';

exampleSuite('sveltekit');
