import { exampleSuite } from './examples-suite.js';

exampleSuite('next');
