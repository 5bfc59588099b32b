// A worker written with the published iii-sdk (npm 0.22.1), driven by the compat tests over stdin/stdout.
// The worker code uses only the SDK's public API, as its users write it. Commands arrive as JSON lines on stdin;
// answers and handler invocations leave as "@@"-prefixed JSON lines on stdout (the SDK logs to stdout too).
// Usage: node driver.mjs ENGINE_URL
import { createInterface } from 'node:readline';
import { registerWorker, TriggerAction } from 'iii-sdk';

const emit = (message) => process.stdout.write('@@' + JSON.stringify(message) + '\n');

function makeHandler(functionId, behavior) {
  return async (data) => {
    if (behavior.record) emit({ invoked: functionId, data });
    if (behavior.fail) throw new Error(behavior.fail);
    if (behavior.require_authorization !== undefined) { // an HTTP auth middleware, as iii's examples write one
      if (data.request?.headers?.authorization !== behavior.require_authorization) {
        return { action: 'respond', response: { status_code: 401, body: { error: 'Unauthorized' } } };
      }
      return { action: 'continue' };
    }
    if (behavior.echo) return { echo: data };
    return behavior.return ?? null;
  };
}

// A custom trigger type's handler, as iii's examples write one: told of every binding made and removed.
const recordingHandler = (type) => ({
  async registerTrigger({ id, function_id, config }) {
    emit({ trigger_event: 'register', type, id, function_id, config });
  },
  async unregisterTrigger({ id }) {
    emit({ trigger_event: 'unregister', type, id });
  },
});

const triggers = new Map(); // handle name -> what registerTrigger returned

async function run(worker, command) {
  switch (command.op) {
    case 'register_function':
      worker.registerFunction(command.id, makeHandler(command.id, command.behavior ?? {}));
      return null;
    case 'register_trigger':
      triggers.set(command.handle ?? '',
        worker.registerTrigger({ type: command.type, function_id: command.function_id, config: command.config ?? {} }));
      return null;
    case 'unregister_trigger':
      triggers.get(command.handle).unregister();
      triggers.delete(command.handle);
      return null;
    case 'register_trigger_type':
      worker.registerTriggerType({ id: command.id, description: command.description }, recordingHandler(command.id));
      return null;
    case 'trigger': {
      const request = { function_id: command.function_id, payload: command.payload };
      if (command.action === 'void') request.action = TriggerAction.Void();
      if (command.action === 'enqueue') request.action = TriggerAction.Enqueue({ queue: 'jobs' });
      if (command.timeout_ms) request.timeoutMs = command.timeout_ms;
      return (await worker.trigger(request)) ?? null;
    }
    default:
      throw new Error(`unknown op ${command.op}`);
  }
}

// iii-sdk 0.22.1 for Node does not read III_TOKEN (the PyPI SDK does): its users pass the header themselves.
const token = (process.env.III_TOKEN ?? '').trim();
const worker = registerWorker(process.argv[2], {
  workerName: 'compat-node',
  reconnectionConfig: { initialDelayMs: 100, maxDelayMs: 500 },
  ...(token ? { headers: { Authorization: `Bearer ${token}` } } : {}),
});
emit({ ready: true });
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const command = JSON.parse(line);
  if (command.op === 'exit') break;
  try {
    emit({ ref: command.ref, result: await run(worker, command) });
  } catch (error) {
    emit({ ref: command.ref, error: { code: error.code ?? 'driver_error', message: error.message } });
  }
}
await worker.shutdown();
process.exit(0);
