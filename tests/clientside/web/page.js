// A web page of "another site": OpenFeature's web SDK with its OFREP web provider, pointed at Flagstream's
// client door with a client-side key. esbuild bundles it (tests/clientside/build.py); the tests serve it from
// an origin other than the admin's. Query: base (the provider's baseUrl: <admin>/client/<key>), flags
// (key:type,...), country (a context attribute), mode (sse | polling).
import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

const params = new URLSearchParams(location.search);
const flags = (params.get('flags') || '').split(',').filter(Boolean).map((f) => f.split(':'));
const mode = params.get('mode') || 'sse';
const list = document.getElementById('flags');
const status = document.getElementById('status');

function render() {
  const client = OpenFeature.getClient();
  list.replaceChildren();
  for (const [key, type] of flags) {
    const detail = type === 'boolean' ? client.getBooleanDetails(key, false)
      : type === 'number' ? client.getNumberDetails(key, 0)
      : client.getStringDetails(key, '');
    const item = document.createElement('li');
    item.dataset.flag = key;
    item.textContent = detail.errorCode ? `error:${detail.errorCode}` : String(detail.value);
    list.append(item);
  }
}

const provider = new OFREPWebProvider({
  baseUrl: params.get('base'),
  cacheMode: 'disabled',
  changeDetection: mode,
  pollInterval: mode === 'polling' ? 200 : 0,
});
// Each render after a change, with its wall time (bench/clientside.py reads them: change to page).
window.flagstreamRenders = [];
OpenFeature.addHandler(ProviderEvents.ConfigurationChanged, () => {
  render();
  status.textContent = 'changed';
  window.flagstreamRenders.push({ at: Date.now(), text: list.textContent });
});
OpenFeature.addHandler(ProviderEvents.Error, (event) => {
  status.textContent = `error: ${event?.message || 'provider error'}`;
});
const context = { targetingKey: 'browser-user-1', country: params.get('country') || 'SE' };
OpenFeature.setProviderAndWait(provider, context).then(
  () => { render(); status.textContent = 'ready'; },
  (error) => { status.textContent = `error: ${error?.message || error}`; },
);
