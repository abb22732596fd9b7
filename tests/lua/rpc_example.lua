-- Runs examples/rpc_callback.lua (the server calls back into the client) with the
-- interpreter under test and checks what it prints.
local T = require'testlib'

local interpreter = T.mode == 'luajit' and 'luajit' or (os.getenv('SOCKETLOOP_BIN') or 'target/release/socketloop')
local out = os.tmpname()
local status = os.execute(interpreter .. ' examples/rpc_callback.lua > ' .. out .. ' 2>&1')
local f = assert(io.open(out))
local text = f:read('*a')
f:close()
os.remove(out)
T.eq(status, 0, 'the example exits 0; it printed:\n' .. text)
local callbacks = 0
for _ in text:gmatch('client: the server has %d of 5') do callbacks = callbacks + 1 end
T.eq(callbacks, 5, 'the server called back into the client five times')
T.ok(text:find('client: sum of squares 1..5 = 55', 1, true), 'the client got the result:\n' .. text)
T.finish()
