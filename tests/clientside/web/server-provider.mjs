// OpenFeature's Node server SDK with its OFREP provider against Flagstream's client door: another language
// evaluating with a client-side key. Usage: node server-provider.mjs <baseUrl> <flag:type>... ; prints one
// JSON line per flag: {"key", "value", "reason", "variant", "errorCode"}.
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';

const [baseUrl, ...flags] = process.argv.slice(2);
await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl }));
const client = OpenFeature.getClient();
const context = { targetingKey: 'server-user-1', country: 'NO' };
for (const spec of flags) {
  const [key, type] = spec.split(':');
  const detail = type === 'boolean' ? await client.getBooleanDetails(key, false, context)
    : await client.getStringDetails(key, 'default', context);
  const { value, reason, variant, errorCode } = detail;
  console.log(JSON.stringify({ key, value, reason, variant: variant ?? null, errorCode: errorCode ?? null }));
}
await OpenFeature.close();
