-- socketloop.copas.timer (copas.timer): copas's timers on loop.after. A recurring timer
-- runs its callback `delay` seconds after the previous run ended (as copas's); an error
-- in the callback goes to the timer's errorhandler (or copas's) and the timer goes on.

local loop = require'socketloop'
local copas = require'socketloop.copas'

local timer = {}
timer.__index = timer

local count = 0

local function fire(self)
	if self.cancelled then return end
	copas.setthreadname(self.name)
	if not self.recurring then
		self.cancelled, self.pending = true, nil
	end
	local handler = self.errorhandler or copas.geterrorhandler()
	local co = coroutine.running()
	xpcall(self.callback, function(err)
		return handler(err, co, nil)
	end, self, self.params)
	if self.recurring and not self.cancelled then
		self.pending = loop.after(self.delay, function() return fire(self) end)
	end
end

function timer:arm(initial_delay)
	assert(initial_delay == nil or initial_delay >= 0, 'delay must be greater than or equal to 0')
	if self.pending then return nil, 'already armed' end
	self.cancelled = false
	self.pending = loop.after(initial_delay or self.delay, function() return fire(self) end)
	return self
end

function timer:cancel()
	if not self.pending then return nil, 'not armed' end
	if self.cancelled then return nil, 'already cancelled' end
	self.cancelled = true
	self.pending:cancel()
	self.pending = nil
	return self
end

function timer.new(opts)
	assert((opts.delay or -1) >= 0, 'delay must be greater than or equal to 0')
	assert(type(opts.callback) == 'function', 'expected callback to be a function')
	count = count + 1
	return setmetatable({
		name = opts.name or ('copas_timer_' .. count),
		delay = opts.delay,
		callback = opts.callback,
		recurring = not not opts.recurring,
		params = opts.params,
		cancelled = false,
		errorhandler = opts.errorhandler,
	}, timer):arm(opts.initial_delay)
end

return timer
