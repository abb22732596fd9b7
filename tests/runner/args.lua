-- Prints the arg table and the script's arguments, for tests/runner_cli.rs.
for i = -3, #arg do print('arg[' .. i .. ']=' .. tostring(arg[i])) end
print('#arg=' .. #arg)
print('...=' .. select('#', ...) .. ':' .. table.concat({...}, ','))
