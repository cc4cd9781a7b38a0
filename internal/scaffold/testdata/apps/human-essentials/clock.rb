require 'clockwork'
