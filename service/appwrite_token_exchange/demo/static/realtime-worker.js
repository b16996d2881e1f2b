// The demo's SharedWorker (the page with ?shared=1): one Realtime socket, and one token per
// socket open, for every tab of the demo. An app's worker module is the same three lines.
import { Client, Realtime } from '/demo/vendor/appwrite.js';
import { serveSharedRealtime } from '/demo/realtime-hub.js';

serveSharedRealtime({ Client, Realtime });
