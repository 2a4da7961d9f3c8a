-- Drives the mcl language server from Neovim's built-in LSP client (0.7 and
-- later), headless, the way the nvim-lspconfig setup in spec/editor.md does:
-- `mclc lsp` started for a .mcl buffer. Writes what it saw to $MCL_OUT as JSON
-- for lsp/test/neovim.test.ts to check. Neovim's own client capabilities are
-- used unchanged (0.7 declares no snippet support).

local out = { errors = {} }
local function note(err) table.insert(out.errors, tostring(err)) end

local ok, err = pcall(function()
  local root = vim.env.MCL_WS
  vim.cmd('edit ' .. vim.fn.fnameescape(root .. '/a.mcl'))
  local bufnr = vim.api.nvim_get_current_buf()
  local client_id = vim.lsp.start_client({
    name = 'mcl',
    cmd = { vim.env.MCL_NODE, vim.env.MCL_CLI, 'lsp' },
    root_dir = root,
    on_stderr = function() end,
  })
  vim.lsp.buf_attach_client(bufnr, client_id)
  local uri = vim.uri_from_bufnr(bufnr)

  vim.wait(30000, function() return #vim.diagnostic.get(bufnr) > 0 end, 50)
  out.diagnostics = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    table.insert(out.diagnostics, { lnum = d.lnum, message = d.message, code = d.code })
  end

  local hover = vim.lsp.buf_request_sync(bufnr, 'textDocument/hover', { textDocument = { uri = uri }, position = { line = 2, character = 11 } }, 10000)
  for _, r in pairs(hover or {}) do
    if r.result then out.hover = r.result.contents end
    if r.err then note(r.err.message) end
  end

  -- A completion at the start of an empty line after the component.
  local lines = vim.api.nvim_buf_line_count(bufnr)
  local completion = vim.lsp.buf_request_sync(bufnr, 'textDocument/completion', { textDocument = { uri = uri }, position = { line = lines - 1, character = 0 } }, 10000)
  out.completion = {}
  for _, r in pairs(completion or {}) do
    local items = r.result and (r.result.items or r.result) or {}
    for _, item in ipairs(items) do
      table.insert(out.completion, { label = item.label, insertText = item.insertText or vim.NIL, insertTextFormat = item.insertTextFormat or vim.NIL })
    end
  end

  local symbols = vim.lsp.buf_request_sync(bufnr, 'textDocument/documentSymbol', { textDocument = { uri = uri } }, 10000)
  for _, r in pairs(symbols or {}) do out.symbols = r.result end

  -- Signature help inside the instance's braces (`  a = A { replicas 2 }`: the `r`).
  local sig_line = 0
  for i, l in ipairs(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)) do
    if l:find('a = A {', 1, true) then sig_line = i - 1 end
  end
  local sig = vim.lsp.buf_request_sync(bufnr, 'textDocument/signatureHelp', { textDocument = { uri = uri }, position = { line = sig_line, character = 11 } }, 10000)
  for _, r in pairs(sig or {}) do
    if r.result then
      local s = r.result.signatures[1]
      local p = s.parameters[(r.result.activeParameter or 0) + 1]
      out.signature = { label = s.label, active = type(p.label) == 'string' and p.label or s.label:sub(p.label[1] + 1, p.label[2]) }
    end
    if r.err then note(r.err.message) end
  end

  local lenses = vim.lsp.buf_request_sync(bufnr, 'textDocument/codeLens', { textDocument = { uri = uri } }, 10000)
  out.lenses = {}
  for _, r in pairs(lenses or {}) do
    for _, l in ipairs(r.result or {}) do table.insert(out.lenses, l.command.title) end
  end

  -- Organize imports, applied as Neovim applies any code action's edit.
  local actions = vim.lsp.buf_request_sync(bufnr, 'textDocument/codeAction', {
    textDocument = { uri = uri },
    range = { start = { line = 0, character = 0 }, ['end'] = { line = 0, character = 0 } },
    context = { diagnostics = {}, only = { 'source.organizeImports' } },
  }, 10000)
  for _, r in pairs(actions or {}) do
    for _, a in ipairs(r.result or {}) do vim.lsp.util.apply_workspace_edit(a.edit, 'utf-16') end
  end
  out.organized = table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), '\n') .. '\n'

  if vim.lsp.buf.format then
    vim.lsp.buf.format({ timeout_ms = 10000 })
  else
    vim.lsp.buf.formatting_sync(nil, 10000)
  end
  out.formatted = table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), '\n') .. '\n'

  vim.lsp.stop_client(client_id)
  out.stopped = vim.wait(5000, function() return vim.lsp.client_is_stopped(client_id) end, 50)
end)
if not ok then note(err) end

local f = io.open(vim.env.MCL_OUT, 'w')
f:write(vim.fn.json_encode(out))
f:close()
vim.cmd('qa!')
