// node-postgres (`pg` and `pg-cursor` from npm) against `panorama serve`: a parameterised
// query, a cursor read in pages, and a transaction. Prints one JSON object.
//
//     NODE_PATH=DIR_WITH_node_modules node node_pg.js HOST PORT
const { Client } = require('pg');
const Cursor = require('pg-cursor');

(async () => {
  const [host, port] = process.argv.slice(2);
  const out = {};
  const c = new Client({ host, port: +port, database: 'panorama', user: 'analyst' });
  await c.connect();
  const call = async (name, f) => {
    try { out[name] = await f(); } catch (e) { out[name] = { error: e.message }; }
  };
  await call('param', async () => (await c.query(
    'SELECT count(*)::bigint AS n FROM segment_members WHERE segment = $1', ['champions'])).rows[0].n);
  await call('cursor', async () => {
    const cur = c.query(new Cursor('SELECT customer_id FROM unified_customers ORDER BY customer_id'));
    const first = await cur.read(3);
    const second = await cur.read(3);
    await cur.close();
    return [first.length, second.length, first[0].customer_id < second[0].customer_id];
  });
  await call('transaction', async () => {
    await c.query('BEGIN READ ONLY');
    const r = await c.query('SELECT count(*)::bigint AS n FROM unified_customers');
    await c.query('COMMIT');
    return r.rows[0].n;
  });
  await c.end();
  console.log(JSON.stringify(out));
})().catch((e) => { console.log(JSON.stringify({ fatal: e.message })); });
