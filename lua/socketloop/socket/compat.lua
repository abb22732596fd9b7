-- LuaSocket's exceptions (protect, newtry) written in Lua, and the hook that puts this
-- protect into LuaSocket's own module.
--
-- LuaSocket's protect is C code calling lua_pcall, which a LuaJIT coroutine cannot yield
-- across: a protected function (socket.http.request, socket.smtp.send...) that waits on
-- an asocket in a loop thread would fail with "attempt to yield across C-call boundary".
-- This protect calls pcall, which LuaJIT lets yield, and keeps LuaSocket's semantics:
-- an error raised by a `try` becomes `nil, message`; any other error propagates as it
-- was. It behaves the same in and out of loop threads.

-- debug.getmetatable: LuaSocket's marker hides itself (its __metatable is false).
local getmetatable = debug.getmetatable
local setmetatable, pcall, error, type, select = setmetatable, pcall, error, type, select

local M = {}

-- The metatables that mark the errors a `try` raises: ours, and LuaSocket's (learnt
-- when its module is loaded), so that either protect unwraps either try's errors.
local marker = {__tostring = function(e) return tostring(e[1]) end}
local markers = {[marker] = true}

local function finish(ok, ...)
	if ok then return ... end
	local err = ...
	if type(err) == 'table' and markers[getmetatable(err)] then
		return nil, err[1]
	end
	error(err, 0)
end

function M.protect(f)
	if type(f) ~= 'function' then
		error("bad argument #1 to 'protect' (function expected, got " .. type(f) .. ')', 2)
	end
	return function(...)
		return finish(pcall(f, ...))
	end
end

local function nothing() end

-- LuaSocket's newtry: a `try(ok, err, ...)` that returns all its arguments when `ok` is
-- true, and otherwise calls `finalizer` and raises `err` marked for protect.
function M.newtry(finalizer)
	if finalizer == nil then finalizer = nothing end
	return function(...)
		if select(1, ...) then return ... end
		finalizer()
		error(setmetatable({(select(2, ...))}, marker), 0)
	end
end

-- Functions of Debian's LuaSocket modules made with protect when they load: a module
-- loaded before its protect was replaced keeps the C one, and these are re-wrapped.
local PROTECTED = {
	['socket.http'] = {'request'},
	['socket.smtp'] = {'send'},
	['socket.ftp'] = {'put', 'get', 'command'},
}

-- The function a C protect closure of LuaSocket's wraps (its upvalues are the error
-- marker and the function), or nil if `f` is not one.
local function c_protected(f)
	if type(f) ~= 'function' or debug.getinfo(f, 'S').what ~= 'C' then return nil end
	local _, mt = debug.getupvalue(f, 1)
	local _, inner = debug.getupvalue(f, 2)
	if markers[mt] and type(inner) == 'function' and debug.getinfo(inner, 'S').what ~= 'C' then
		return inner
	end
end

local function rewrap_loaded()
	for name, fields in pairs(PROTECTED) do
		local mod = package.loaded[name]
		if type(mod) == 'table' then
			for _, field in ipairs(fields) do
				local inner = c_protected(mod[field])
				if inner then mod[field] = M.protect(inner) end
			end
		end
	end
end

-- Puts this protect into LuaSocket's module table `socket` (socket.core's, which
-- socket.lua returns as its own), learns its try's marker, re-wraps the functions of
-- modules loaded before, and, as Lua 5.1 modules do (LuaSocket 2, ltn12), sets the
-- global `socket` if there is none.
function M.install(socket)
	if type(socket) ~= 'table' or socket.protect == M.protect then return end
	if type(socket.newtry) == 'function' then
		local ok, e = pcall(socket.newtry(), nil, 'marker')
		if not ok and type(e) == 'table' and getmetatable(e) ~= nil then
			markers[getmetatable(e)] = true
		end
	end
	if type(socket.protect) ~= 'function' then return end
	socket.protect = M.protect
	rewrap_loaded()
	if module ~= nil and rawget(_G, 'socket') == nil then
		rawset(_G, 'socket', socket)
	end
end

local loaders = package.loaders or package.searchers

-- A searcher placed first: for LuaSocket's modules it runs the search that would have
-- happened and installs protect into the module it loads.
local function searcher(name)
	if name ~= 'socket.core' and name ~= 'socket' then return nil end
	for _, search in ipairs(loaders) do
		if search ~= searcher then
			local load, extra = search(name)
			if type(load) == 'function' then
				return function(...)
					local mod = load(...)
					M.install(mod ~= nil and mod or package.loaded[name])
					return mod
				end, extra
			end
		end
	end
	return nil -- require goes on with the other searchers and reports what they say
end

-- Installs protect into LuaSocket's module now if it is loaded, or when it loads.
function M.hook()
	M.install(package.loaded['socket.core'])
	M.install(package.loaded.socket)
	for _, search in ipairs(loaders) do
		if search == searcher then return end
	end
	table.insert(loaders, 1, searcher)
end

M.marker = marker
return M
